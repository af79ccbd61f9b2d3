// The FaceFleet console: a small client of the /v1/ API, served by the API itself.
// The key stays in this tab's session storage and goes only into the Authorization header.
"use strict";

const KEY = "facefleet.key";
const POLL_MS = 1000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
let pollTimer = null;

const $ = (id) => document.getElementById(id);

function key() {
  return sessionStorage.getItem(KEY) || "";
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (key()) headers.set("Authorization", `Bearer ${key()}`);
  const response = await fetch(`/v1${path}`, { ...options, headers });
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

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearTimeout(pollTimer);
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

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const body = new FormData();
  body.append("target", $("target").files[0]);
  for (const file of $("source").files) body.append("source", file);
  const options = {
    processors: form.processors.value,
    codec: form.codec.value,
    crf: Number(form.crf.value),
  };
  if (form.processors.value !== "none") options.face_detector = form.face_detector.value;
  body.append("options", JSON.stringify(options));
  $("submit-error").textContent = "";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("/tasks", { method: "POST", body });
    form.reset();
    refresh();
  } catch (error) {
    $("submit-error").textContent = `Not submitted: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function button(label, action, id) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "secondary";
  element.textContent = label;
  element.setAttribute("aria-label", `${label} task ${id}`);
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

function renderTask(summary, status) {
  const item = document.createElement("li");
  item.dataset.id = summary.id;
  item.dataset.state = summary.state;
  const head = document.createElement("div");
  head.className = "task-head";
  const name = document.createElement("span");
  name.textContent = summary.target_name || "(video)";
  const id = document.createElement("span");
  id.className = "task-id";
  id.textContent = summary.id;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = summary.state;
  head.append(name, state, id);
  item.append(head);

  const progress = status && status.progress;
  if (progress) {
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = progress.percent;
    bar.setAttribute("aria-label", `progress of task ${summary.id}`);
    const line = document.createElement("p");
    const phase = status.phase ? `${status.phase}, ` : "";
    const eta = progress.eta_s != null ? `, ${Math.round(progress.eta_s)} s left` : "";
    line.textContent = `${phase}${progress.frames_done}/${progress.frames_total} frames (${progress.percent}%), ${progress.fps} frame/s${eta}`;
    item.append(bar, line);
  }
  if (summary.error) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = summary.error;
    item.append(error);
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  if (status && status.output_url) {
    const link = document.createElement("a");
    link.href = status.output_url;
    link.textContent = "Download";
    link.setAttribute("download", "");
    link.setAttribute("aria-label", `Download the output of task ${summary.id}`);
    actions.append(link);
  }
  const path = `/tasks/${encodeURIComponent(summary.id)}`;
  if (!TERMINAL.has(summary.state)) actions.append(button("Cancel", () => api(`${path}/cancel`, { method: "POST" }), summary.id));
  if (summary.state === "failed") actions.append(button("Retry", () => api(`${path}/retry`, { method: "POST" }), summary.id));
  actions.append(button("Delete", () => api(path, { method: "DELETE" }), summary.id));
  item.append(actions);
  return item;
}

async function refresh() {
  clearTimeout(pollTimer);
  if (!key() && $("work").hidden) return;
  let page;
  try {
    page = await api("/tasks?limit=50");
  } catch (_) {
    pollTimer = setTimeout(refresh, POLL_MS * 3);
    return;
  }
  const statuses = await Promise.all(
    page.items.map((task) =>
      TERMINAL.has(task.state) && task.state !== "succeeded"
        ? null
        : api(`/tasks/${encodeURIComponent(task.id)}`).catch(() => null)
    )
  );
  const list = $("tasks");
  list.replaceChildren(...page.items.map((task, i) => renderTask(task, statuses[i])));
  $("no-tasks").hidden = page.items.length > 0;
  if (page.items.some((task) => !TERMINAL.has(task.state))) pollTimer = setTimeout(refresh, POLL_MS);
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
