// Audit page: the estimate panel, its three figures and the cluster gallery, refreshed as labels
// arrive: the audit's event stream says when the estimate changed (any annotator, anywhere), a
// review tab in this browser says so at once, and polling stands in only while the stream is down.
import { api, count, showProblem, support } from "./api.js";
import { boundedCeiling, el, extent, plot, responsive } from "./charts.js";

const page = document.querySelector("[data-audit-page]");
const auditId = page.dataset.auditPage;
const POLL_MS = 3000; // only while the event stream is down
const data = { batch: null, calibration: null, history: null };
const plots = Object.fromEntries(
  [...document.querySelectorAll("[data-plot]")].map((node) => [node.dataset.plot, node]),
);

function message(node, text) {
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = text;
  node.replaceChildren(p);
}

function drawBatch() {
  const node = plots.batch;
  const d = data.batch;
  if (!d) return;
  const points = d.points;
  const sMax = points[points.length - 1].s;
  const layers = [
    { type: "band", name: "band", cls: "c-band", data: points.map((p) => ({ x: p.s, lo: p.p_low, hi: p.p_high })) },
    { type: "hline", y: 0.5, cls: "c-half", label: "1/2" },
    { type: "line", name: "model", cls: "c-model", data: points.map((p) => ({ x: p.s, y: p.p })) },
    {
      type: "points",
      name: "pool",
      cls: "c-pool",
      data: points
        .filter((p) => p.p_pool !== null)
        .map((p) => ({ x: p.s, y: p.p_pool, title: `s=${p.s}: ${p.p_pool.toFixed(3)} of pool batches` })),
    },
  ];
  if (d.s50) layers.push({ type: "vline", name: "s50", cls: "c-s50", x: d.s50, label: `s₅₀ = ${count(d.s50)}` });
  plot(node, {
    title: "batch curve",
    x: { label: "batch size s", domain: [0, sMax] },
    y: { label: "P(duplicate in batch)", domain: [0, 1] },
    layers,
    legend: [
      { cls: "c-model", label: "1 − exp(−C(s,2) q̂)" },
      { cls: "c-band", label: `${Math.round(d.level * 100)}% interval` },
      { cls: "c-pool", label: "batches drawn from the pool" },
    ],
  });
}

// A fixed jitter per pair, so points do not hop between refreshes.
function jitter(id) {
  const h = Math.sin(id * 12.9898) * 43758.5453;
  return (h - Math.floor(h) - 0.5) * 0.08;
}

function drawCalibration() {
  const node = plots.calibration;
  const d = data.calibration;
  if (!d) return;
  if (!d.bins.length) return message(node, "No candidate pairs yet.");
  const lo = d.bins[0].low;
  const hi = d.bins[d.bins.length - 1].high;
  const levels = { duplicate: 1, unsure: 0.5, distinct: 0 };
  const labelled = (label) => ({
    type: "points",
    name: label,
    cls: `c-${label}`,
    r: 2.5,
    data: d.points
      .filter((p) => p.label === label)
      .map((p) => ({ x: p.distance, y: levels[label] + jitter(p.pair_id), title: `pair ${p.pair_id}: ${label}, d=${p.distance.toPrecision(4)}` })),
  });
  plot(node, {
    title: "calibration",
    x: { label: "distance", domain: hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5] },
    y: { label: "P(duplicate | distance)", domain: [-0.08, 1.08] },
    y2: { label: "candidate pairs", domain: [0, Math.max(1, ...d.bins.map((b) => b.candidates)) * 1.1] },
    layers: [
      {
        type: "bars",
        name: "histogram",
        axis: "y2",
        cls: "c-hist",
        data: d.bins.map((b) => ({ x0: b.low, x1: b.high, y: b.candidates, title: `${b.candidates} candidates` })),
      },
      labelled("distinct"),
      labelled("unsure"),
      labelled("duplicate"),
      { type: "line", name: "fit", cls: "c-fit", step: true, data: d.fit.map((f) => ({ x: f.distance, y: f.p })) },
      {
        type: "points",
        name: "rate",
        cls: "c-rate",
        r: 4,
        data: d.bins
          .filter((b) => b.p_duplicate !== null)
          .map((b) => ({
            x: (b.low + b.high) / 2,
            y: b.p_duplicate,
            lo: b.p_low,
            hi: b.p_high,
            title: `${b.duplicate} of ${b.duplicate + b.distinct} duplicate`,
          })),
      },
    ],
    legend: [
      { cls: "c-hist", label: "candidates" },
      { cls: "c-duplicate", label: "duplicate" },
      { cls: "c-distinct", label: "distinct" },
      { cls: "c-unsure", label: "unsure" },
      { cls: "c-rate", label: "share per bin (Wilson)" },
      { cls: "c-fit", label: "isotonic fit" },
    ],
  });
  if (d.beyond > 0) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = `Zoomed on the labelled distances: ${count(d.beyond)} of ${count(d.candidate_pairs)} candidates lie farther than ${hi.toPrecision(3)}.`;
    node.appendChild(note);
  }
}

function drawHistory() {
  const node = plots.history;
  const d = data.history;
  if (!d) return;
  if (!d.points.length) return message(node, "No judgements yet: the estimate appears with the first label.");
  // The axis spans the values drawn to scale; upper ends beyond the ceiling bound nothing, so
  // their band is drawn up to the plot's top edge and marked there.
  const shown = d.points.flatMap((p) => [p.n_eff, p.n_eff_low]).filter((v) => v !== null);
  const pairs = (d.n * (d.n - 1)) / 2;
  const ceiling = boundedCeiling(pairs, shown);
  const unbounded = (p) => p.n_eff_high === null || p.n_eff_high > ceiling;
  const values = [...shown, ...d.points.map((p) => (unbounded(p) ? null : p.n_eff_high))].filter((v) => v !== null);
  const domain = extent(values, { log: true });
  const x = (p) => p.judgements;
  const last = d.points[d.points.length - 1].judgements;
  const offTop = d.points.filter(unbounded);
  const svg = plot(node, {
    title: "estimate history",
    x: { label: "judgements", domain: [0, Math.max(1, last)] },
    y: { label: "N_eff", log: true, domain },
    layers: [
      {
        type: "band",
        name: "band",
        cls: "c-band",
        data: d.points.map((p) => ({ x: x(p), lo: p.n_eff_low, hi: unbounded(p) ? domain[1] : p.n_eff_high })),
      },
      { type: "line", name: "bound", cls: "c-bound", data: d.points.map((p) => ({ x: x(p), y: p.n_eff === null ? p.n_eff_low : null })) },
      { type: "line", name: "estimate", cls: "c-model", data: d.points.map((p) => ({ x: x(p), y: p.n_eff })) },
      {
        type: "points",
        name: "estimate-points",
        cls: "c-model",
        r: 2.5,
        data: d.points.map((p) => ({ x: x(p), y: p.n_eff, title: `after ${p.judgements}: ${support(p.n_eff)} (D=${p.duplicate_pairs})` })),
      },
      {
        type: "points",
        name: "off-top",
        cls: "c-model",
        data: offTop.map((p) => ({
          x: x(p),
          y: domain[1],
          title: `after ${p.judgements}: upper end ${p.n_eff_high === null ? "∞" : support(p.n_eff_high)}, off the scale`,
        })),
      },
    ],
    legend: [
      { cls: "c-model", label: "N_eff" },
      { cls: "c-band", label: `${Math.round(d.level * 100)}% interval` },
      ...(d.points.some((p) => p.n_eff === null) ? [{ cls: "c-bound", label: "lower bound, no duplicate yet" }] : []),
    ],
  });
  svg.dataset.judgements = d.judgements;
  // An upward triangle at the top edge where the band runs past the axis, in place of a dot.
  for (const dot of svg.querySelectorAll('[data-layer="off-top"] circle')) {
    const cx = Number(dot.getAttribute("cx"));
    const mark = el("path", { class: "off-top", d: `M${cx - 4},8L${cx},1L${cx + 4},8Z` });
    mark.append(...dot.childNodes);
    dot.replaceWith(mark);
  }
  if (offTop.length) {
    const note = document.createElement("p");
    note.className = "note";
    note.dataset.offTop = "";
    const bound = ceiling === pairs ? `C(n, 2) = ${count(pairs)}` : `${support(ceiling)}, past C(n, 2) = ${count(pairs)}`;
    note.textContent =
      `▲ Upper ends that bound nothing (above ${bound}: under one duplicate pair expected in the pool) ` +
      "are drawn to the top edge of the plot, not to scale.";
    node.appendChild(note);
  }
}

const FIGURES = {
  batch: { url: "batch-curve", draw: drawBatch },
  calibration: { url: "calibration?span=labelled", draw: drawCalibration },
  history: { url: "estimate-history", draw: drawHistory },
};

// Samples in the pool so far, as the page was rendered and the event stream updates it.
const poolSize = () => Number(document.querySelector(".audit-meta").dataset.samplesDone);

async function loadFigures() {
  // No pool yet (queued, or failed before its first samples): the API would refuse every figure.
  if (poolSize() < 2) {
    for (const key of Object.keys(FIGURES)) {
      data[key] = null;
      delete plots[key].dataset.ready;
      message(plots[key], "No data yet: the pool has fewer than 2 samples.");
    }
    return;
  }
  await Promise.all(
    Object.entries(FIGURES).map(async ([key, figure]) => {
      try {
        data[key] = await api(`/api/audits/${auditId}/${figure.url}`);
        figure.draw();
        plots[key].dataset.ready = "true";
      } catch (error) {
        data[key] = null;
        message(plots[key], error.status === 422 ? "No data yet: the pool has fewer than 2 samples." : error.message);
      }
    }),
  );
}

async function swap(node) {
  const response = await fetch(node.dataset.fragment, { headers: { accept: "text/html" } });
  if (!response.ok) return false;
  // Compare as the browser serialises both, so the server's whitespace and entities do not count.
  const parsed = document.createElement("template");
  parsed.innerHTML = await response.text();
  if (parsed.innerHTML === node.innerHTML) return false;
  node.innerHTML = parsed.innerHTML;
  return true;
}

let refreshing = null;
let again = false;

// One refresh at a time; a request during one runs once more after it.
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const panel = document.getElementById("estimate-panel");
      if (await swap(panel)) await Promise.all([swap(document.getElementById("gallery")), loadFigures()]);
      // The pool has come since the figures were held back (or they failed): ask again.
      else if (poolSize() >= 2 && Object.keys(FIGURES).some((key) => !plots[key].dataset.ready)) await loadFigures();
    } catch {
      // Offline for a moment: the next poll tries again.
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    await refresh();
  }
}

const running = (status) => ["queued", "running"].includes(status);
// The audit's events while the page is shown: job progress, and each new estimate. A hidden page
// lets its connection go (a browser has ~6 per host for all its tabs) and catches up when shown:
// the stream's first events are the current progress and estimate.
function openStream() {
  const meta = document.querySelector(".audit-meta");
  const source = new EventSource(`/api/audits/${auditId}/events`);
  const setStatus = (status) => {
    const ended = running(meta.dataset.state) && !running(status);
    meta.dataset.state = status;
    const badge = meta.querySelector("[data-status]");
    badge.textContent = status;
    badge.className = `badge status-${status}`;
    if (ended) refresh();
  };
  source.addEventListener("progress", (event) => {
    const p = JSON.parse(event.data);
    const bar = meta.querySelector("progress");
    bar.max = p.n;
    bar.value = p.samples_done;
    meta.dataset.samplesDone = p.samples_done;
    meta.querySelector("[data-done]").textContent = count(p.samples_done);
    meta.querySelector("[data-n]").textContent = count(p.n);
    meta.querySelector("[data-pairs]").textContent = count(p.candidate_pairs);
    // The first event carries the status: the job may have ended before the stream opened.
    if (p.status) setStatus(p.status);
  });
  source.addEventListener("status", (event) => setStatus(JSON.parse(event.data).status));
  // An estimate's id is its digest; the panel carries the digest of the one it shows.
  source.addEventListener("estimate", (event) => {
    const shown = document.querySelector("#estimate-panel [data-estimate]")?.dataset.estimate;
    if (event.lastEventId !== shown) refresh();
  });
  return source;
}

let stream = null;
function follow() {
  stream?.close();
  stream = document.visibilityState === "visible" ? openStream() : null;
}

// Extend the pool (the job restarts: reload to follow it live), change the stopping target, or
// import another audit's labels. The three forms share one problem box and one result line, put in
// the form they are about and cleared as soon as any form is edited or sent, or the browser holds
// one back as invalid.
function poolActions() {
  const card = document.querySelector("[data-pool-actions]");
  const box = card.querySelector("[data-problem]");
  const result = card.querySelector("[data-pool-result]");
  const clear = () => {
    showProblem(box, null);
    result.hidden = true;
  };
  card.addEventListener("input", clear);
  card.addEventListener("invalid", clear, true); // does not bubble
  const send = (form, url, body, done, labels, method = "POST") =>
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clear();
      form.append(box, result);
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        done(await api(url, { method, json: body() }));
      } catch (error) {
        showProblem(box, error, labels);
      } finally {
        button.disabled = false;
      }
    });
  const extend = card.querySelector("[data-extend]");
  // The stopping rule's suggestion, as the panel shows it now.
  const suggest = () => {
    const more = document.querySelector("#estimate-panel [data-stop]")?.dataset.samplesToGo;
    extend.elements.n_more.placeholder = more ? `${more} for the target` : "";
  };
  suggest();
  new MutationObserver(suggest).observe(document.getElementById("estimate-panel"), { childList: true });
  send(
    extend,
    `/api/audits/${auditId}/extend`,
    () => ({ n_more: Number(extend.elements.n_more.value) }),
    () => window.location.reload(),
    { n_more: "Samples to add" },
  );
  // The stopping target: the panel (and any review page of this audit) follows it.
  const target = card.querySelector("[data-target]");
  send(
    target,
    `/api/audits/${auditId}`,
    () => ({ target: Number(target.elements.target_pct.value) / 100 }),
    (audit) => {
      result.hidden = false;
      result.textContent = `The review now aims for ±${+(audit.target * 100).toPrecision(3)}%.`;
      refresh();
    },
    { target: { label: "Aim for ±", percent: true } }, // the form asks in percent, sends pct / 100
    "PATCH",
  );
  const imports = card.querySelector("[data-import]");
  send(
    imports,
    `/api/audits/${auditId}/import-labels`,
    () => ({ from_audit: Number(imports.elements.from_audit.value) }),
    (r) => {
      result.hidden = false;
      result.textContent =
        `${count(r.copied)} judgements copied: ${count(r.matched_pairs)} of the ${count(r.judged_pairs)} ` +
        `judged pairs of audit ${imports.elements.from_audit.value} are pairs of this audit` +
        (r.kept ? `; ${count(r.kept)} were judged here already by the same annotator.` : ".");
      refresh();
    },
    { from_audit: "From audit #" },
  );
}

poolActions();
for (const [key, figure] of Object.entries(FIGURES)) responsive(plots[key], figure.draw);
loadFigures();
follow();
document.addEventListener("visibilitychange", follow);
new BroadcastChannel(`birthday-audit-${auditId}`).addEventListener("message", () => refresh());
setInterval(() => {
  if (stream && stream.readyState !== EventSource.OPEN) refresh();
}, POLL_MS);

// An admin deletes the audit (its pairs, samples, judgements and jobs go with it).
document.querySelector("[data-delete-audit]")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const box = document.querySelector("[data-delete-problem]");
  if (!window.confirm(`Delete audit #${auditId} with its pairs, samples and judgements?`)) return;
  button.disabled = true;
  try {
    await api(`/api/audits/${auditId}`, { method: "DELETE" });
    window.location.assign("/");
  } catch (error) {
    showProblem(box, error);
    button.disabled = false;
  }
});
