// The Jobs view: start training jobs, follow them live (server-sent events) with a loss curve on a canvas.

import { clearError, events, getJSON, jobPath, request, setStatus, showError } from "./api.js";
import { $, cardHref, h, nextId } from "./dom.js";
import { fmt } from "./format.js";
import { fieldError, numberValue, onSubmit, whileBusy } from "./forms.js";
import { loadRuns } from "./runs.js";
import { state } from "./state.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const MAX_JOB_STREAMS = 3; // browsers hold few connections per host: leave room for the page's own requests
const JOB_POLL_MS = 5000;
const STATUS_TONE = { succeeded: "ok", failed: "bad", cancelled: "", interrupted: "warn", running: "info", queued: "" };

const jobs = {
  entries: new Map(), // job id -> {job, train: [[step, loss]], val: [[step, loss]], el, streaming, controller}
  timer: null,
  streams: 0,
  loaded: false,
  missing: false, // the server has no jobs endpoint
};

export function startJobs() {
  loadJobs();
  if (!jobs.timer) jobs.timer = setInterval(loadJobs, JOB_POLL_MS);
}

export function stopJobsPolling() {
  if (jobs.timer) clearInterval(jobs.timer);
  jobs.timer = null;
}

/** Removes the "No jobs yet" line of the jobs list, if it is there. */
function removeEmptyNote(container) {
  const note = $(".empty", container);
  if (note) note.remove();
}

async function loadJobs() {
  let data;
  try {
    data = await getJSON("/v1/jobs");
  } catch (e) {
    if (e.status === 404) {
      jobs.missing = true;
      stopJobsPolling();
      $("#jobs").replaceChildren(h("p", { class: "empty" }, "This server runs no training jobs."));
      return;
    }
    if (state.view === "jobs") showError(e);
    return;
  }
  const list = data.data || [];
  for (const job of list) upsertJob(job);
  const container = $("#jobs");
  if (!list.length && !jobs.entries.size) {
    container.replaceChildren(h("p", { class: "empty" }, "No jobs yet. Start one above."));
  } else {
    const order = [...jobs.entries.values()].sort((a, b) => (b.job.created_at || 0) - (a.job.created_at || 0));
    removeEmptyNote(container);
    order.forEach((entry, i) => {
      const there = container.children[i];
      if (there !== entry.el.root) container.insertBefore(entry.el.root, there || null);
    });
  }
  jobs.loaded = true;
  watchJobs();
}

function watchJobs() {
  const rank = (entry) => (entry.job.status === "running" ? -1 : 1);
  const active = [...jobs.entries.values()]
    .filter((e) => !FINAL.has(e.job.status) && !e.streaming)
    .sort((a, b) => rank(a) - rank(b));
  for (const entry of active) {
    if (jobs.streams >= MAX_JOB_STREAMS) break;
    followJob(entry);
  }
}

async function followJob(entry) {
  entry.streaming = true;
  jobs.streams += 1;
  const controller = new AbortController();
  entry.controller = controller;
  try {
    const response = await request(jobPath(entry.job.id, "/events"), { signal: controller.signal });
    for await (const { event, data } of events(response)) {
      if (event === "error" || data.error) break;
      const before = entry.job.status;
      upsertJob(data);
      if (before !== data.status && FINAL.has(data.status)) jobFinished(entry);
    }
  } catch (e) {
    if (e.name !== "AbortError" && state.view === "jobs") {
      setStatus(`Lost the live view of ${entry.job.run}: ${e.message}`);
    }
  } finally {
    entry.streaming = false;
    jobs.streams -= 1;
    if (FINAL.has(entry.job.status)) watchJobs();
    else setTimeout(watchJobs, 2000); // the stream broke: follow it again
  }
}

function jobFinished(entry) {
  setStatus(`Job ${entry.job.run} ${entry.job.status}.`);
  if (entry.job.status === "succeeded") {
    state.details.delete(entry.job.run);
    loadRuns();
  }
}

function upsertJob(job) {
  let entry = jobs.entries.get(job.id);
  if (!entry) {
    entry = { job, train: [], val: [], streaming: false, el: jobCard(job) };
    jobs.entries.set(job.id, entry);
    if (jobs.loaded) {
      const container = $("#jobs");
      removeEmptyNote(container);
      container.prepend(entry.el.root);
    }
  }
  entry.job = job;
  const m = job.metrics || {};
  if (typeof m.step === "number") {
    const lastTrain = entry.train[entry.train.length - 1];
    if (typeof m.train_loss === "number" && (!lastTrain || m.step > lastTrain[0])) {
      entry.train.push([m.step, m.train_loss]);
    }
    const lastVal = entry.val[entry.val.length - 1];
    if (typeof m.val_loss === "number" && (!lastVal || (m.step > lastVal[0] && m.val_loss !== lastVal[1]))) {
      entry.val.push([m.step, m.val_loss]);
    }
  }
  renderJob(entry);
  return entry;
}

function jobCard(job) {
  const titleId = nextId("job");
  const el = {};
  el.title = h("span", {}, job.run);
  el.badge = h("span", { class: "badge" });
  el.dl = h("dl");
  el.progress = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${job.run}` });
  el.error = h("p", { class: "error", role: "note" });
  el.cancel = h(
    "button",
    { type: "button", class: "small" },
    "Cancel",
    h("span", { class: "visually-hidden" }, ` ${job.run}`),
  );
  el.cancel.addEventListener("click", () => cancelJob(job.id));
  el.link = h("a", { href: cardHref(job.run) }, "Model card");
  el.canvas = h("canvas", { role: "img", "aria-label": `Loss curve of ${job.run}: no points yet` });
  const legend = h(
    "p",
    { class: "legend", "aria-hidden": "true" },
    h("span", { class: "train" }, "train loss"),
    h("span", { class: "val" }, "validation loss"),
  );
  el.root = h(
    "article",
    { class: "job", "aria-labelledby": titleId },
    h(
      "div",
      {},
      h("h2", { id: titleId }, el.title, el.badge),
      el.dl,
      el.progress,
      el.error,
      h("div", { class: "actions" }, el.cancel, el.link),
    ),
    h("div", {}, el.canvas, legend),
  );
  new ResizeObserver(() => drawJob(jobs.entries.get(job.id))).observe(el.canvas);
  return el;
}

function renderJob(entry) {
  const { job, el } = entry;
  const m = job.metrics || {};
  el.title.textContent = job.run;
  el.badge.textContent = job.cancel_requested && job.status === "running" ? "cancelling" : job.status;
  el.badge.className = `badge ${STATUS_TONE[job.status] || ""}`;
  const rows = [
    ["Family", job.family],
    ["Dataset", job.data],
    ["Step", job.max_steps ? `${fmt(m.step ?? 0)} of ${fmt(job.max_steps)}` : fmt(m.step)],
    ["Train loss", fmt(m.train_loss)],
    ["Val loss", fmt(m.val_loss)],
    ["Started", job.started_at ? new Date(job.started_at * 1000).toLocaleString() : "not yet"],
    ["Job", job.id],
  ];
  el.dl.replaceChildren(...rows.flatMap(([t, v]) => [h("dt", {}, t), h("dd", {}, v)]));
  const max = job.max_steps || 0;
  if (max) {
    el.progress.max = max;
    el.progress.value = Math.min(max, m.step || 0);
    el.progress.hidden = false;
  } else {
    el.progress.hidden = job.status !== "running";
    el.progress.removeAttribute("value"); // indeterminate
  }
  el.error.textContent = job.error || "";
  el.error.hidden = !job.error;
  el.cancel.hidden = FINAL.has(job.status);
  el.cancel.disabled = Boolean(job.cancel_requested);
  el.link.hidden = job.status !== "succeeded";
  drawJob(entry);
}

async function cancelJob(id) {
  clearError();
  try {
    const job = await getJSON(jobPath(id), { method: "DELETE" });
    upsertJob(job);
    setStatus(
      job.status === "cancelled" ? `Cancelled ${job.run}.` : `Cancelling ${job.run}: it saves a checkpoint first.`,
    );
  } catch (e) {
    showError(e);
  }
}

export function setupJobs() {
  onSubmit($("#job-form"), async () => {
    const family = $("#job-family");
    const data = $("#job-data");
    const steps = $("#job-steps");
    const name = $("#job-name");
    if (!family.value.trim()) return fieldError("Family is required.", family);
    if (!data.value.trim()) return fieldError("Dataset is required.", data);
    const body = { family: family.value.trim(), data: data.value.trim() };
    try {
      const n = numberValue(steps, "Training steps", true);
      if (n !== undefined) body.set = [`train.max_steps=${n}`];
    } catch (e) {
      return fieldError(e, steps);
    }
    if (name.value.trim()) body.name = name.value.trim();
    await whileBusy($("#job-form button[type=submit]"), async () => {
      const job = await getJSON("/v1/jobs", { method: "POST", json: body });
      upsertJob(job);
      if (!jobs.loaded) await loadJobs();
      watchJobs();
      setStatus(`Queued ${job.run} (${job.id}).`);
    });
  });
  $("#jobs-refresh").addEventListener("click", () => {
    clearError();
    loadJobs();
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** The job's loss curves on its canvas: train solid, validation dashed with dots. */
function drawJob(entry) {
  if (!entry) return;
  const canvas = entry.el.canvas;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const last = (series) => (series.length ? series[series.length - 1][1] : null);
  const { train, val } = entry;
  const summary =
    train.length || val.length
      ? `${train.length} train points, last ${fmt(last(train))}; ` +
        `${val.length} validation points, last ${fmt(last(val))}`
      : "no points yet";
  canvas.setAttribute("aria-label", `Loss curve of ${entry.job.run}: ${summary}`);
  if (!width || !height) return; // not shown now: drawn when it is (ResizeObserver)
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `12px ${cssVar("--sans") || "sans-serif"}`;
  ctx.fillStyle = cssVar("--muted");
  const points = [...train, ...val];
  if (!points.length) {
    ctx.textAlign = "center";
    const waiting = FINAL.has(entry.job.status)
      ? "No loss was recorded while this page watched."
      : "Waiting for the first loss…";
    ctx.fillText(waiting, width / 2, height / 2);
    return;
  }
  const pad = { left: 48, right: 12, top: 12, bottom: 24 };
  const steps = points.map((p) => p[0]);
  const losses = points.map((p) => p[1]);
  const x0 = Math.min(...steps, 0);
  const x1 = Math.max(entry.job.max_steps || 0, ...steps, x0 + 1);
  let y0 = Math.min(...losses);
  let y1 = Math.max(...losses);
  if (y1 - y0 < 1e-9) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const margin = (y1 - y0) * 0.08;
  y0 -= margin;
  y1 += margin;
  const X = (s) => pad.left + ((s - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const Y = (v) => pad.top + (1 - (v - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  // grid and labels
  ctx.strokeStyle = cssVar("--border");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 3; i++) {
    const v = y0 + ((y1 - y0) * i) / 3;
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
    ctx.fillText(fmt(v, 3), pad.left - 6, y);
  }
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.fillText(`step ${fmt(x0)}`, pad.left, height - pad.bottom + 6);
  ctx.textAlign = "right";
  ctx.fillText(fmt(x1), width - pad.right, height - pad.bottom + 6);
  // curves
  const line = (series, color, dashed) => {
    if (!series.length) return;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(dashed ? [6, 4] : []);
    ctx.beginPath();
    series.forEach(([s, v], i) => (i ? ctx.lineTo(X(s), Y(v)) : ctx.moveTo(X(s), Y(v))));
    ctx.stroke();
    ctx.setLineDash([]);
    if (dashed || series.length === 1) {
      for (const [s, v] of series) {
        ctx.beginPath();
        ctx.arc(X(s), Y(v), 3, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  };
  line(train, cssVar("--train"), false);
  line(val, cssVar("--val"), true);
}
