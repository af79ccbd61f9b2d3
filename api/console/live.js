// The console's live view: each unfinished task's events (server-sent events), read with
// fetch so that the key travels in the Authorization header (EventSource cannot send one, and
// the key never goes into a URL). Loaded before app.js, whose helpers it calls.
"use strict";

const MAX_STREAMS = 4; // a browser keeps ~6 connections per server: leave room for the rest
const streams = new Map(); // task id -> AbortController of its open event stream
const live = new Map(); // task id -> what its event stream said: {state, progress, events, seen}

// Follows one task until its stream ends; a failed stream leaves the task to polling.
async function follow(taskId) {
  const controller = new AbortController();
  streams.set(taskId, controller);
  const seen = live.get(taskId) || { state: null, progress: null, events: 0, seen: [] };
  live.set(taskId, seen);
  try {
    const response = await fetch(
      `/v1/tasks/${encodeURIComponent(taskId)}/events`,
      authorized({ headers: { Accept: "text/event-stream" }, signal: controller.signal })
    );
    if (!response.ok || !response.body) throw new Error(`${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim());
        if (data.length) onEvent(taskId, JSON.parse(data.join("\n")));
      }
    }
  } catch (_) {
    /* the stream failed or was closed: polling takes over for this task */
  } finally {
    if (streams.get(taskId) === controller) streams.delete(taskId);
  }
}

function onEvent(taskId, event) {
  const seen = live.get(taskId);
  if (!seen) return;
  seen.events += 1;
  if (event.state) seen.state = event.state;
  if (event.event === "progress" && event.progress) {
    seen.progress = event.progress;
    seen.seen.push(event.progress.frames_done);
  }
  const item = document.querySelector(`#tasks li[data-id="${CSS.escape(taskId)}"]`);
  if (item) paintLive(item, seen);
  if (event.event === "state" && TERMINAL.has(event.state)) {
    announce(`Task ${taskId} ${event.state}.`);
    refresh(); // for its output link, quality and the usage it added
  }
}

function paintLive(item, seen) {
  item.dataset.live = "stream";
  item.dataset.events = String(seen.events);
  item.dataset.streamFrames = seen.seen.join(",");
  if (seen.state && !TERMINAL.has(item.dataset.state)) {
    item.dataset.state = seen.state;
    item.querySelector(".state").textContent = seen.state;
  }
  const progress = seen.progress;
  if (!progress || !progress.frames_total) return;
  const percent = Math.round((1000 * progress.frames_done) / progress.frames_total) / 10;
  const bar = item.querySelector("progress");
  const line = item.querySelector(".progress-line");
  if (!bar || !line || Number(line.dataset.frames || 0) > progress.frames_done) return;
  bar.value = percent;
  line.dataset.frames = String(progress.frames_done);
  line.textContent = `${progress.frames_done}/${progress.frames_total} frames (${percent}%), live`;
}
