// The FaceFleet console: a small client of the /v1/ API, served by the API itself.
// The key stays in this tab's session storage and goes only into the Authorization header
// (never into a URL, never into the console's log). live.js follows tasks' event streams.
"use strict";

const KEY = "facefleet.key";
const POLL_MS = 1000; // while a task is unfinished and no event stream follows it
const STREAMED_POLL_MS = 4000; // while every unfinished task has its event stream
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const VIDEO = /\.(mp4|m4v|mov|mkv|webm|avi|mpe?g|ts|mts|wmv|flv|3gp)$/i;
let pollTimer = null;

const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY) || "";
}

function authorized(options = {}) {
  const headers = new Headers(options.headers || {});
  if (key()) headers.set("Authorization", `Bearer ${key()}`);
  return { ...options, headers };
}

async function api(path, options = {}) {
  const response = await fetch(`/v1${path}`, authorized(options));
  if (response.status === 401) {
    signOut("This key was refused; sign in again.");
    throw new Error("the key was refused");
  }
  if (!response.ok) {
    let detail = `${response.status}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch (_) { /* not a problem body */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}

function show(signedIn) {
  $("sign-in-section").hidden = signedIn;
  $("work").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

function closeStreams() {
  for (const controller of streams.values()) controller.abort();
  streams.clear();
  live.clear();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearTimeout(pollTimer);
  closeStreams();
  show(false);
  $("sign-in-error").textContent = message || "";
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const given = $("api-key").value.trim();
  sessionStorage.setItem(KEY, given);
  $("api-key").value = "";
  try {
    await api("/tasks?limit=1");
  } catch (error) {
    signOut(`Could not sign in: ${error.message}`);
    return;
  }
  $("sign-in-error").textContent = "";
  show(true);
  refresh();
}

// ---------------------------------------------------------------- submitting

function chosenVideos() {
  const folder = [...$("folder").files].filter((file) => file.type.startsWith("video/") || VIDEO.test(file.name));
  return [...$("target").files, ...folder];
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const videos = chosenVideos();
  $("submit-error").textContent = "";
  $("submit-status").textContent = "";
  if (videos.length === 0) {
    $("submit-error").textContent = "Choose a video (or several, or a folder of videos).";
    $("target").focus();
    return;
  }
  const options = {
    processors: form.processors.value,
    codec: form.codec.value,
    crf: Number(form.crf.value),
  };
  if (form.processors.value !== "none") options.face_detector = form.face_detector.value;
  // a batch wants options and sources before its targets; a task takes them in any order
  const body = new FormData();
  body.append("options", JSON.stringify(options));
  for (const file of $("source").files) body.append("source", file);
  for (const file of videos) body.append("target", file, file.name);
  const batch = videos.length > 1;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await api(batch ? "/batches" : "/tasks", { method: "POST", body });
    form.reset();
    if (batch) {
      const refused = answer.items.filter((item) => item.error);
      const note = refused.length ? `; ${refused.length} refused: ${refused.map((i) => `${i.name}: ${i.error}`).join("; ")}` : "";
      $("submit-status").textContent = `Batch ${answer.id} submitted: ${answer.tasks.length} tasks${note}.`;
    } else {
      $("submit-status").textContent = `Task ${answer.id} submitted.`;
    }
    refresh();
  } catch (error) {
    $("submit-error").textContent = `Not submitted: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function announce(text) {
  $("announce").textContent = text;
}

// ---------------------------------------------------------------- rendering

function button(label, action, what) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "secondary";
  element.textContent = label;
  element.setAttribute("aria-label", `${label} ${what}`);
  element.addEventListener("click", async () => {
    try {
      await action();
    } catch (error) {
      alert(`${label}: ${error.message}`);
    }
    refresh();
  });
  return element;
}

function element(tag, className, text) {
  const found = document.createElement(tag);
  if (className) found.className = className;
  if (text != null) found.textContent = text;
  return found;
}

function figures(className, pairs) {
  const list = element("dl", className);
  for (const [term, value] of pairs) {
    if (value == null) continue;
    list.append(element("dt", null, term), element("dd", null, String(value)));
  }
  return list;
}

const fixed = (value, digits) => (value == null ? "–" : Number(value).toFixed(digits));

function qualityView(quality, subject) {
  const box = element("div", "quality");
  box.dataset.passed = String(quality.passed);
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `quality of ${subject}`);
  const similarity = quality.id_similarity || {};
  box.append(
    element("p", quality.passed ? "passed" : "error", quality.passed ? "Quality: passed" : "Quality: below the thresholds"),
    figures("figures", [
      ["Identity similarity (mean)", similarity.samples ? fixed(similarity.mean, 3) : null],
      ["PSNR outside the faces", quality.psnr_outside_db == null ? null : `${fixed(quality.psnr_outside_db, 1)} dB`],
      ["Sampled frames with a face detected", quality.face_coverage == null ? null : `${fixed(100 * quality.face_coverage, 0)}%`],
    ])
  );
  for (const reason of quality.reasons || []) box.append(element("p", "error", reason));
  return box;
}

function progressView(progress, label, text) {
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = progress.percent;
  bar.setAttribute("aria-label", label);
  const line = element("p", "progress-line", text);
  line.dataset.frames = String(progress.frames_done);
  return [bar, line];
}

function renderTask(summary, status) {
  const item = element("li");
  item.dataset.id = summary.id;
  item.dataset.state = summary.state;
  const head = element("div", "task-head");
  head.append(
    element("span", null, summary.target_name || "(video)"),
    element("span", "state", summary.state),
    element("span", "task-id", summary.id)
  );
  item.append(head);
  if (summary.batch_id) item.append(element("p", "hint", `in batch ${summary.batch_id}`));

  const progress = status && status.progress;
  if (progress) {
    const phase = status.phase ? `${status.phase}, ` : "";
    const eta = progress.eta_s != null ? `, ${Math.round(progress.eta_s)} s left` : "";
    const text = `${phase}${progress.frames_done}/${progress.frames_total} frames (${progress.percent}%), ${progress.fps} frame/s${eta}`;
    item.append(...progressView(progress, `progress of task ${summary.id}`, text));
  }
  if (status && status.quality) item.append(qualityView(status.quality, `task ${summary.id}`));
  if (summary.error) item.append(element("p", "error", summary.error));
  const actions = element("div", "actions");
  if (status && status.output_url) {
    const link = element("a", null, "Download");
    link.href = status.output_url;
    link.setAttribute("download", "");
    link.setAttribute("aria-label", `Download the output of task ${summary.id}`);
    actions.append(link);
  }
  const path = `/tasks/${encodeURIComponent(summary.id)}`;
  const what = `task ${summary.id}`;
  if (!TERMINAL.has(summary.state)) actions.append(button("Cancel", () => api(`${path}/cancel`, { method: "POST" }), what));
  if (summary.state === "failed") actions.append(button("Retry", () => api(`${path}/retry`, { method: "POST" }), what));
  actions.append(button("Delete", () => api(path, { method: "DELETE" }), what));
  item.append(actions);
  const seen = live.get(summary.id);
  if (seen && !TERMINAL.has(summary.state)) paintLive(item, seen);
  else if (seen) Object.assign(item.dataset, { live: "stream", events: String(seen.events), streamFrames: seen.seen.join(",") });
  return item;
}

function renderBatch(batch) {
  const item = element("li");
  item.dataset.id = batch.id;
  item.dataset.state = batch.state;
  const head = element("div", "task-head");
  head.append(element("span", null, `${batch.items} videos`), element("span", "state", batch.state), element("span", "task-id", batch.id));
  const counts = Object.entries(batch.counts).filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`).join(", ");
  const line = `${counts || "no items"}; ${batch.progress.frames_done}/${batch.progress.frames_total} frames (${batch.progress.percent}%)`;
  item.append(head, ...progressView(batch.progress, `progress of batch ${batch.id}`, line));
  item.querySelector(".progress-line").classList.add("counts");
  if (batch.quality) item.append(qualityView(batch.quality, `batch ${batch.id}`));
  const actions = element("div", "actions");
  const path = `/batches/${encodeURIComponent(batch.id)}`;
  const what = `batch ${batch.id}`;
  if (batch.state !== "completed") actions.append(button("Cancel", () => api(`${path}/cancel`, { method: "POST" }), what));
  if (batch.counts.failed > 0) actions.append(button("Retry", () => api(`${path}/retry`, { method: "POST" }), what));
  actions.append(button("Delete", () => api(path, { method: "DELETE" }), what));
  item.append(actions);
  return item;
}

function renderUsage(usage) {
  const quota = usage.monthly_frames == null ? "" : ` of ${usage.monthly_frames}`;
  const megabytes = (bytes) => (bytes < 1e6 ? `${(bytes / 1e3).toFixed(0)} kB` : `${(bytes / 1e6).toFixed(1)} MB`);
  $("usage").replaceChildren(
    ...figures("figures", [
      ["Month", usage.month],
      ["Tasks", usage.tasks],
      ["Frames", `${usage.frames}${quota}`],
      ["Worker time", `${Math.round(usage.worker_seconds)} s`],
      ["In / out", `${megabytes(usage.bytes_in)} / ${megabytes(usage.bytes_out)}`],
    ]).childNodes
  );
}

// Keeps keyboard focus on the same control across a re-render of a list.
function replaceKeepingFocus(list, items) {
  const focused = document.activeElement;
  const label = focused && list.contains(focused) ? focused.getAttribute("aria-label") : null;
  list.replaceChildren(...items);
  if (label) {
    const again = [...list.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === label);
    if (again) again.focus();
  }
}

async function refresh() {
  clearTimeout(pollTimer);
  if (!key() && $("work").hidden) return;
  let page, batches;
  try {
    [page, batches] = await Promise.all([api("/tasks?limit=50"), api("/batches?limit=10")]);
  } catch (_) {
    pollTimer = setTimeout(refresh, POLL_MS * 3);
    return;
  }
  api("/usage").then(renderUsage, () => {});
  for (const task of page.items) {
    if (!TERMINAL.has(task.state) && !streams.has(task.id) && streams.size < MAX_STREAMS) follow(task.id);
  }
  const statuses = await Promise.all(
    page.items.map((task) =>
      TERMINAL.has(task.state) && task.state !== "succeeded"
        ? null
        : api(`/tasks/${encodeURIComponent(task.id)}`).catch(() => null)
    )
  );
  replaceKeepingFocus($("tasks"), page.items.map((task, i) => renderTask(task, statuses[i])));
  $("no-tasks").hidden = page.items.length > 0;
  replaceKeepingFocus($("batches"), batches.items.map(renderBatch));
  $("batches-section").hidden = batches.items.length === 0;
  const unfinished = page.items.filter((task) => !TERMINAL.has(task.state));
  const running = batches.items.some((batch) => batch.state !== "completed");
  if (unfinished.length || running) {
    const streamed = unfinished.every((task) => streams.has(task.id));
    pollTimer = setTimeout(refresh, streamed ? STREAMED_POLL_MS : POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", signIn);
  $("submit").addEventListener("submit", submit);
  $("sign-out").addEventListener("click", () => signOut(""));
  $("refresh").addEventListener("click", refresh);
  if (key()) {
    show(true);
    refresh();
  } else {
    show(false);
  }
});
