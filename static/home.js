// Home page: progress bars and statuses follow the audit jobs live over server-sent events.
import { api, count } from "./api.js";

const ACTIVE = new Set(["queued", "running"]);
const MAX_STREAMED = 100; // audits per stream (GET /api/events)

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

const active = () =>
  [...document.querySelectorAll("tr[data-audit]")]
    .filter((row) => ACTIVE.has(row.dataset.state))
    .map((row) => row.dataset.audit);

// One stream for all the active audits, and none while the page is hidden: a browser has ~6
// connections per host for all its tabs, and a stream holds one. The stream's first events
// are each audit's current progress and status, so a page shown again catches up.
let source = null;
function follow() {
  source?.close();
  source = null;
  const ids = active().slice(0, MAX_STREAMED);
  if (!ids.length || document.visibilityState !== "visible") return;
  source = new EventSource(`/api/events?${ids.map((id) => `audit=${id}`).join("&")}`);
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    setProgress(data.audit_id, data);
    if (!data.status) return;
    // The first event of each audit carries its status: it may have ended before the stream opened.
    setStatus(data.audit_id, data.status);
    if (!active().length) follow();
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    setStatus(data.audit_id, data.status);
    if (!active().length) follow(); // all ended: let the connection go
  });
}

follow();
document.addEventListener("visibilitychange", follow);

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
