// Compare page: every chosen audit's N_eff and interval on one log axis (a forest plot).
import { support } from "./api.js";
import { boundedCeiling, el, extent, logScale, responsive, short } from "./charts.js";

const rows = JSON.parse(document.getElementById("compare-data").textContent);
const node = document.querySelector('[data-plot="compare"]');

function draw() {
  const width = Math.max(280, node.clientWidth);
  const margin = { top: 10, right: 24, bottom: 40, left: 64 };
  const rowHeight = 34;
  const height = margin.top + margin.bottom + rowHeight * Math.max(1, rows.length);
  const w = width - margin.left - margin.right;
  // An upper end beyond the ceiling is drawn as unbounded, an arrow, rather than stretching the axis.
  const open = (r) => r.high === null || r.high > boundedCeiling(r.pairs, [r.n_eff ?? r.low]);
  const values = rows.flatMap((r) => [r.n_eff, r.low, open(r) ? null : r.high, r.truth]).filter((v) => v !== null && v > 0);
  const x = logScale(extent(values, { log: true, pad: 0.08 }), [0, w]);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "N_eff by audit", class: "plot-svg" });
  const frame = el("g", { transform: `translate(${margin.left},${margin.top})` }, svg);
  const h = rowHeight * rows.length;
  const grid = el("g", { class: "grid" }, frame);
  const axis = el("g", { class: "axis axis-bottom" }, frame);
  for (const t of x.ticks()) {
    el("line", { x1: x(t), x2: x(t), y1: 0, y2: h }, grid);
    el("text", { x: x(t), y: h + 17, "text-anchor": "middle" }, axis, short(t));
  }
  el("text", { class: "axis-label", x: w / 2, y: h + 34, "text-anchor": "middle" }, frame, "N_eff (log scale)");
  rows.forEach((r, k) => {
    const cy = k * rowHeight + rowHeight / 2;
    const g = el("g", { class: "layer audit-row", "data-audit": r.id }, frame);
    el("text", { class: "row-label", x: -10, y: cy + 4, "text-anchor": "end" }, g, `#${r.id}`);
    if (r.low === null) {
      el("text", { class: "muted", x: 4, y: cy + 4 }, g, "no estimate yet");
      return;
    }
    const x0 = x(r.low);
    const x1 = open(r) ? w : x(r.high);
    el("line", { class: "whisker", x1: x0, x2: x1, y1: cy, y2: cy }, g);
    el("line", { class: "whisker", x1: x0, x2: x0, y1: cy - 6, y2: cy + 6 }, g);
    if (open(r)) el("path", { class: "arrow", d: `M${w - 7},${cy - 5}L${w},${cy}L${w - 7},${cy + 5}` }, g);
    else el("line", { class: "whisker", x1: x1, x2: x1, y1: cy - 6, y2: cy + 6 }, g);
    const level = Math.round((r.level || 0.95) * 100);
    if (r.n_eff !== null) {
      el("circle", { class: "estimate", cx: x(r.n_eff), cy, r: 5 }, g).appendChild(
        el("title", {}, null, `audit ${r.id}: N_eff ${support(r.n_eff)}, ${level}% interval ${support(r.low)} – ${r.high === null ? "∞" : support(r.high)}`),
      );
    }
    if (r.truth !== null) {
      const tx = x(r.truth);
      el("path", { class: "truth", d: `M${tx},${cy - 7}L${tx + 6},${cy}L${tx},${cy + 7}L${tx - 6},${cy}Z` }, g).appendChild(
        el("title", {}, null, `known N_eff ${support(r.truth)}`),
      );
    }
  });
  node.replaceChildren(svg);
}

responsive(node, draw);
