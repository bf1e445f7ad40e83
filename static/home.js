// Home page: progress bars and statuses follow the audit jobs live over server-sent events.
import { api, count } from "./api.js";

const ACTIVE = new Set(["queued", "running"]);
const MAX_STREAMED = 100; // audits and training runs per stream (GET /api/events)

// The audit's row and the rows of its jobs still active (an extended audit has older, finished ones).
function rowsFor(auditId) {
  const jobs = [...document.querySelectorAll(`tr[data-job-audit="${auditId}"]`)];
  return [
    ...document.querySelectorAll(`tr[data-audit="${auditId}"]`),
    ...jobs.filter((row) => ACTIVE.has(row.dataset.state)),
  ];
}

// A training run's job rows still active.
function runRows(runId) {
  return [...document.querySelectorAll(`tr[data-job-run="${runId}"]`)].filter((row) =>
    ACTIVE.has(row.dataset.state),
  );
}

function setStatus(rows, status) {
  for (const row of rows) {
    const badge = row.querySelector("[data-status]");
    if (badge) {
      badge.textContent = status;
      badge.className = `badge status-${status}`;
    }
    row.dataset.state = status;
    if (!ACTIVE.has(status)) row.querySelector("[data-cancel]")?.remove();
  }
}

function setProgress(rows, done, total, pairs = null) {
  for (const row of rows) {
    const bar = row.querySelector("progress");
    if (bar) {
      bar.max = total;
      bar.value = done;
      bar.title = `${done} / ${total}`;
    }
    const doneText = row.querySelector("[data-done]");
    if (doneText) doneText.textContent = count(done);
    const n = row.querySelector("[data-n]");
    if (n) n.textContent = count(total);
    const pairsText = row.querySelector("[data-pairs]");
    if (pairsText && pairs !== null) pairsText.textContent = count(pairs);
  }
}

const activeIds = (selector, key) => [
  ...new Set(
    [...document.querySelectorAll(selector)]
      .filter((row) => ACTIVE.has(row.dataset.state) && row.dataset[key])
      .map((row) => row.dataset[key]),
  ),
];
const activeAudits = () => activeIds("tr[data-audit]", "audit");
const activeRuns = () => activeIds("tr[data-job-run]", "jobRun");

// The rows an event is about, with its progress figures.
function about(data) {
  if (data.training_run_id !== undefined) {
    return { rows: runRows(data.training_run_id), done: data.step, total: data.steps, pairs: null };
  }
  const rows = rowsFor(data.audit_id);
  return { rows, done: data.samples_done, total: data.n, pairs: data.candidate_pairs };
}

// One stream for all the active audits and training runs, and none while the page is hidden: a
// browser has ~6 connections per host for all its tabs, and a stream holds one. The stream's
// first events are each one's current progress and status, so a page shown again catches up.
let source = null;
function follow() {
  source?.close();
  source = null;
  const query = [
    ...activeAudits().map((id) => `audit=${id}`),
    ...activeRuns().map((id) => `training_run=${id}`),
  ].slice(0, MAX_STREAMED);
  if (!query.length || document.visibilityState !== "visible") return;
  source = new EventSource(`/api/events?${query.join("&")}`);
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    const { rows, done, total, pairs } = about(data);
    setProgress(rows, done, total, pairs);
    if (!data.status) return;
    // The first event of each carries its status: it may have ended before the stream opened.
    setStatus(rows, data.status);
    if (!ACTIVE.has(data.status)) followWhenAllEnded();
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    setStatus(about(data).rows, data.status);
    followWhenAllEnded();
  });
}

// All ended: let the connection go.
function followWhenAllEnded() {
  if (!activeAudits().length && !activeRuns().length) follow();
}

follow();
document.addEventListener("visibilitychange", follow);

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-cancel]");
  if (!button) return;
  button.disabled = true;
  try {
    const job = await api(`/api/jobs/${button.dataset.cancel}/cancel`, { method: "POST" });
    if (job.status === "cancelled") {
      if (job.audit_id) setStatus(rowsFor(job.audit_id), "cancelled");
      if (job.training_run_id) setStatus(runRows(job.training_run_id), "cancelled");
    }
    button.textContent = "cancelling…";
  } catch (error) {
    // Say why beside the button (a 403: someone else's job; only they or an admin may stop it).
    button.disabled = false;
    button.title = error.message;
    const cell = button.closest("td");
    cell.querySelector(".error-text")?.remove();
    cell.append(Object.assign(document.createElement("span"), {
      className: "error-text",
      textContent: ` ${error.message}`,
    }));
  }
});

// An admin deletes a generator no audit uses; the server's reason shows when it refuses.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-delete-generator]");
  if (!button) return;
  const id = button.dataset.deleteGenerator;
  if (!window.confirm(`Delete generator #${id} and its file?`)) return;
  button.disabled = true;
  try {
    await api(`/api/generators/${id}`, { method: "DELETE" });
    button.closest("tr").remove();
  } catch (error) {
    button.disabled = false;
    button.title = error.message;
    button.textContent = "not deleted";
    button.closest("td").append(Object.assign(document.createElement("span"), {
      className: "error-text",
      textContent: ` ${error.message}`,
    }));
  }
});
