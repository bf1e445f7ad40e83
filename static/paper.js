// The paper's protocol from the user's own batches: POST /api/paper-protocol, then its figures.
import { api, ApiError, count, showProblem } from "./api.js";
import { plot, responsive } from "./charts.js";

const form = document.querySelector("[data-paper-form]");
const rows = form.querySelector("[data-rows]");
const box = form.querySelector("[data-problem]");
const result = document.querySelector("[data-paper-result]");
const chart = result.querySelector('[data-plot="paper"]');
let latest = null;

form.querySelector("[data-add]").addEventListener("click", () => {
  const last = rows.querySelector("[data-row]:last-child");
  const row = last.cloneNode(true);
  const size = row.querySelector("input[name=size]");
  size.value = String(Number(size.value || 50) * 2);
  rows.appendChild(row);
  size.focus();
});
rows.addEventListener("click", (event) => {
  const button = event.target.closest("[data-remove]");
  if (button && rows.querySelectorAll("[data-row]").length > 1) button.closest("[data-row]").remove();
});

// The API's locations of the fields, in the form's own words (see showProblem).
const LABELS = {
  "batches.*.size": "batch size s",
  "batches.*.batches": "batches drawn",
  "batches.*.with_duplicate": "with a duplicate",
  level: "level",
};

// A field's number, or null when it is blank (Number("") is 0) or not a number the browser could
// read (its value is then "").
function number(input) {
  const raw = input.value.trim();
  const value = raw && !input.validity.badInput ? Number(raw) : NaN;
  return Number.isFinite(value) ? value : null;
}

// The request body, and what is missing or wrong in the form, in its own words.
function body() {
  const problems = [];
  const whole = (row, k, name) => {
    const value = number(row.querySelector(`input[name=${name}]`));
    if (value === null || !Number.isInteger(value)) {
      problems.push(`${LABELS[`batches.*.${name}`]} (row ${k + 1}) must be a whole number`);
    }
    return value;
  };
  const batches = [...rows.querySelectorAll("[data-row]")].map((row, k) => ({
    size: whole(row, k, "size"),
    batches: whole(row, k, "batches"),
    with_duplicate: whole(row, k, "with_duplicate"),
  }));
  const level = number(form.elements.level);
  if (level === null) problems.push("level must be a number");
  return { payload: { batches, level }, problems };
}

// P(duplicate among s draws) for a uniform generator on n outputs.
function uniformShare(s, n) {
  let none = 0;
  for (let i = 1; i < s; i += 1) {
    if (i >= n) return 1;
    none += Math.log1p(-i / n);
  }
  return 1 - Math.exp(none);
}

const fixed = (v, digits = 2) => (v === null || v === undefined ? "–" : v.toFixed(digits));

function summary(r) {
  const pct = `${Math.round(r.level * 100)}%`;
  const lines = [];
  if (!r.s50) lines.push("No batch size reaches a share of 1/2: try larger batches.");
  else if (r.s50_upper_bound) {
    // the smallest size tried already reaches 1/2: the true s50 may be smaller
    lines.push(`s50 ≤ ${count(r.s50)}: the paper's support ≈ s50² ≤ ${count(r.paper_support)}; try smaller batches.`);
  } else lines.push(`s50 = ${count(r.s50)}: the paper's support ≈ s50² = ${count(r.paper_support)}`);
  const low = r.n_low === null ? "1" : count(r.n_low); // no bound below: N >= 1
  const high = r.n_high === null ? "∞" : count(r.n_high);
  lines.push(r.n_hat === null ? `Uniform model: N in [${low}, ${high}] (${pct}); no interior maximum.` : `Uniform-model MLE N = ${count(r.n_hat)}, ${pct} interval [${low}, ${high}].`);
  if (r.uniform_fit_p !== null) {
    const far = r.uniform_fit_p < 0.05;
    lines.push(`Uniform model fit: p = ${r.uniform_fit_p.toPrecision(3)} (${far ? "far from uniform: s50² and the MLE misread its support" : "consistent with a uniform generator"}).`);
  }
  return lines;
}

function draw() {
  if (!latest) return;
  const sizes = latest.sizes.map((s) => s.size);
  const top = Math.max(...sizes) * 1.15;
  const layers = [
    { type: "hline", y: 0.5, label: "1/2", name: "half", cls: "c-half" },
    {
      type: "points",
      name: "shares",
      cls: "c-rate",
      data: latest.sizes.map((s) => ({
        x: s.size,
        y: s.share,
        lo: s.share_low,
        hi: s.share_high,
        title: `s = ${s.size}: ${s.with_duplicate} of ${s.batches}`,
      })),
    },
  ];
  if (latest.n_hat !== null) {
    const curve = [];
    for (let k = 0; k <= 80; k += 1) {
      const s = Math.max(2, Math.round((top * k) / 80));
      curve.push({ x: s, y: uniformShare(s, latest.n_hat) });
    }
    layers.push({ type: "line", name: "uniform", data: curve, cls: "c-fit" });
  }
  plot(chart, {
    height: 240,
    title: "share of batches with a duplicate",
    x: { label: "batch size s", domain: [0, top] },
    y: { label: "share with a duplicate", domain: [0, 1] },
    layers,
  });
}

function show(r) {
  latest = r;
  result.hidden = false;
  const list = result.querySelector("[data-summary]");
  list.replaceChildren(
    ...summary(r).map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
  const body = result.querySelector("[data-shares]");
  body.replaceChildren(
    ...r.sizes.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.size = String(s.size);
      for (const [text, num] of [
        [count(s.size), true],
        [count(s.batches), true],
        [count(s.with_duplicate), true],
        [`${fixed(s.share)} [${fixed(s.share_low)}, ${fixed(s.share_high)}]`, false],
        [fixed(s.uniform_share), true],
      ]) {
        const td = document.createElement("td");
        if (num) td.className = "num";
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  result.querySelector("[data-note]").textContent = r.note;
  draw();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showProblem(box, null);
  const { payload, problems } = body();
  if (problems.length) return showProblem(box, new ApiError(0, `${problems.join("; ")}.`));
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    show(await api("/api/paper-protocol", { method: "POST", json: payload }));
  } catch (error) {
    showProblem(box, error, LABELS);
  } finally {
    button.disabled = false;
  }
});

responsive(chart, draw);
