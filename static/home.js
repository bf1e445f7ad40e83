// Home page: progress bars and statuses follow the audit jobs live over server-sent events.
import { api, count } from "./api.js";

const ACTIVE = new Set(["queued", "running"]);
// Browsers allow ~6 HTTP/1.1 connections per host: stream a few audits, poll the rest.
const MAX_STREAMS = 4;

// The audit's row and the rows of its jobs still active (an extended audit has older, finished ones).
function rowsFor(auditId) {
  const jobs = [...document.querySelectorAll(`tr[data-job-audit="${auditId}"]`)];
  return [
    ...document.querySelectorAll(`tr[data-audit="${auditId}"]`),
    ...jobs.filter((row) => ACTIVE.has(row.dataset.state)),
  ];
}

function setStatus(auditId, status) {
  for (const row of rowsFor(auditId)) {
    const badge = row.querySelector("[data-status]");
    if (badge) {
      badge.textContent = status;
      badge.className = `badge status-${status}`;
    }
    row.dataset.state = status;
    if (!ACTIVE.has(status)) row.querySelector("[data-cancel]")?.remove();
  }
}

function setProgress(auditId, progress) {
  for (const row of rowsFor(auditId)) {
    const bar = row.querySelector("progress");
    if (bar) {
      bar.max = progress.n;
      bar.value = progress.samples_done;
      bar.title = `${progress.samples_done} / ${progress.n}`;
    }
    const done = row.querySelector("[data-done]");
    if (done) done.textContent = count(progress.samples_done);
    const n = row.querySelector("[data-n]");
    if (n) n.textContent = count(progress.n);
    const pairs = row.querySelector("[data-pairs]");
    if (pairs) pairs.textContent = count(progress.candidate_pairs);
  }
}

function stream(auditId) {
  const source = new EventSource(`/api/audits/${auditId}/events?estimates=false`);
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    setProgress(auditId, data);
    if (data.status) setStatus(auditId, data.status);
    // The first event carries the status: the job may have ended before the stream opened.
    if (data.status && !ACTIVE.has(data.status)) source.close();
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    setStatus(auditId, data.status);
    if (!ACTIVE.has(data.status)) source.close();
  });
}

async function poll(auditId) {
  try {
    const audit = await api(`/api/audits/${auditId}`);
    setProgress(auditId, audit.progress);
    setStatus(auditId, audit.status);
    if (!ACTIVE.has(audit.status)) return;
  } catch {
    // A failed poll is retried below.
  }
  setTimeout(() => poll(auditId), 3000);
}

const active = [...document.querySelectorAll("tr[data-audit]")]
  .filter((row) => ACTIVE.has(row.dataset.state))
  .map((row) => row.dataset.audit);
active.slice(0, MAX_STREAMS).forEach(stream);
active.slice(MAX_STREAMS).forEach(poll);

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-cancel]");
  if (!button) return;
  button.disabled = true;
  try {
    const job = await api(`/api/jobs/${button.dataset.cancel}/cancel`, { method: "POST" });
    if (job.audit_id && job.status === "cancelled") setStatus(job.audit_id, "cancelled");
    button.textContent = "cancelling…";
  } catch (error) {
    button.disabled = false;
    button.title = error.message;
  }
});
