// Small SVG charts for the estimate panel and the compare page: linear and log scales, bars on a
// second axis, bands, lines, points with error bars and marker lines. SVG rather than canvas so
// that every mark is an element: readable by tests, selectable, and sharp at any zoom.

const NS = "http://www.w3.org/2000/svg";

export function el(name, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// Short tick labels: 0.5, 20, 1.5k, 2M, 3e9.
export function short(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return v.toExponential(0).replace("e+", "e");
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 1) return `${+v.toPrecision(4)}`;
  return `${+v.toPrecision(2)}`;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m >= 5 ? 10 : m >= 2 ? 5 : m >= 1 ? 2 : 1) * power;
}

// A scale maps the domain [d0, d1] onto the pixel range [r0, r1].
export function linearScale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  const f = (v) => r0 + ((v - d0) / span) * (r1 - r0);
  f.domain = [d0, d1];
  f.ticks = (count = 5) => {
    const step = niceStep(d1 - d0 || 1, count);
    // Enough decimals to tell neighbouring ticks apart (0.405, 0.41 rather than 0.4, 0.4).
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    f.format = (v) => (step < 1 ? v.toFixed(decimals) : short(v));
    const out = [];
    for (let t = Math.ceil(d0 / step) * step; t <= d1 + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  };
  return f;
}

export function logScale([d0, d1], [r0, r1]) {
  const l0 = Math.log10(d0);
  const l1 = Math.log10(d1);
  const span = l1 - l0 || 1;
  const f = (v) => r0 + ((Math.log10(v) - l0) / span) * (r1 - r0);
  f.domain = [d0, d1];
  // Powers of ten, at most `count` of them: an interval reaching 1e70 (a bound from a handful of
  // labels) gets a tick every k decades, not seventy labels on top of each other.
  f.ticks = (count = 5) => {
    const out = [];
    const steps = l1 - l0 < 1.5 ? [1, 2, 5] : [1];
    const powers = Math.floor(l1 + 1e-9) - Math.ceil(l0 - 1e-9) + 1;
    const every = Math.max(1, Math.ceil(powers / Math.max(1, count)));
    for (let p = Math.floor(l0); p <= Math.ceil(l1); p++) {
      if (((p % every) + every) % every !== 0) continue;
      for (const m of steps) {
        const t = m * 10 ** p;
        if (t >= d0 * (1 - 1e-9) && t <= d1 * (1 + 1e-9)) out.push(t);
      }
    }
    return out;
  };
  return f;
}

// The highest N_eff upper end worth drawing: past C(n, 2) the pool expects under one duplicate
// pair, so an end there bounds nothing (a fresh review's reach 1e15-1e70 and would squash every
// estimate into one line). At least 10x the largest estimate, so the estimates keep headroom.
export function boundedCeiling(pairs, estimates) {
  const shown = estimates.filter((v) => Number.isFinite(v) && v > 0);
  return Math.max(pairs, 10 * (shown.length ? Math.max(...shown) : 0));
}

// Domain of the finite values, padded; for a log axis the values must be > 0.
export function extent(values, { log = false, pad = 0.05, floor = null } = {}) {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (!finite.length) return log ? [1, 10] : [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (log) {
    const l0 = Math.log10(lo);
    const l1 = Math.log10(hi);
    const p = Math.max((l1 - l0) * pad, 0.15);
    return [10 ** (l0 - p), 10 ** (l1 + p)];
  }
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.5 || 1;
    hi += Math.abs(hi) * 0.5 || 1;
  }
  const p = (hi - lo) * pad;
  return [floor !== null ? Math.max(floor, lo - p) : lo - p, hi + p];
}

const MARGIN = { top: 12, right: 16, bottom: 42, left: 52 };

function axis(svg, scale, { orient, length, offset, format = null }) {
  const g = el("g", { class: `axis axis-${orient}` }, svg);
  const ticks = scale.ticks(orient === "bottom" ? Math.max(3, Math.floor(length / 70)) : 5);
  format = format || scale.format || short;
  for (const t of ticks) {
    const p = scale(t);
    if (orient === "bottom") {
      el("line", { x1: p, x2: p, y1: offset, y2: offset + 5 }, g);
      el("text", { x: p, y: offset + 17, "text-anchor": "middle" }, g, format(t));
    } else {
      const left = orient === "left";
      el("line", { x1: offset, x2: offset + (left ? -5 : 5), y1: p, y2: p }, g);
      el("text", { x: offset + (left ? -8 : 8), y: p + 4, "text-anchor": left ? "end" : "start" }, g, format(t));
    }
  }
  return g;
}

function grid(svg, x, y, width, height) {
  const g = el("g", { class: "grid" }, svg);
  for (const t of y.ticks(5)) el("line", { x1: 0, x2: width, y1: y(t), y2: y(t) }, g);
  return g;
}

function path(points) {
  let d = "";
  let pen = false;
  for (const [px, py] of points) {
    if (!Number.isFinite(px) || !Number.isFinite(py)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
    pen = true;
  }
  return d;
}

// plot(container, spec) draws one chart and returns its <svg>.
// spec: {height, x: {label, log, domain}, y: {...}, y2: {...} (optional), layers: [...], legend: [...]}
// layers: {type: "bars", axis: "y2", data: [{x0, x1, y}]}, {type: "band", data: [{x, lo, hi}]},
//         {type: "line", data: [{x, y}], step}, {type: "points", data: [{x, y, lo, hi, title}], r},
//         {type: "vline", x, label}, {type: "hline", y, label}; each may carry `cls` and `name`.
export function plot(container, spec) {
  const width = Math.max(260, Math.floor(container.clientWidth || 480));
  const height = spec.height || 240;
  const margin = { ...MARGIN, right: spec.y2 ? 52 : MARGIN.right };
  const w = width - margin.left - margin.right;
  const h = height - margin.top - margin.bottom;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": spec.title || "",
    class: "plot-svg",
  });
  const make = (a, range) => (a.log ? logScale(a.domain, range) : linearScale(a.domain, range));
  const x = make(spec.x, [0, w]);
  const y = make(spec.y, [h, 0]);
  const y2 = spec.y2 ? make(spec.y2, [h, 0]) : null;
  const clipId = `clip-${Math.random().toString(36).slice(2)}`;
  el("rect", { x: 0, y: 0, width: w, height: h }, el("clipPath", { id: clipId }, el("defs", {}, svg)));
  const frame = el("g", { transform: `translate(${margin.left},${margin.top})` }, svg);
  grid(frame, x, y, w, h);
  const area = el("g", { "clip-path": `url(#${clipId})` }, frame);
  for (const layer of spec.layers) drawLayer(area, frame, layer, x, layer.axis === "y2" ? y2 : y, w, h);
  axis(frame, x, { orient: "bottom", length: w, offset: h, format: spec.x.format });
  axis(frame, y, { orient: "left", length: h, offset: 0, format: spec.y.format });
  if (y2) axis(frame, y2, { orient: "right", length: h, offset: w, format: spec.y2.format });
  el("text", { class: "axis-label", x: w / 2, y: h + 36, "text-anchor": "middle" }, frame, spec.x.label);
  el("text", { class: "axis-label", transform: `translate(-40,${h / 2}) rotate(-90)`, "text-anchor": "middle" }, frame, spec.y.label);
  if (y2) {
    el("text", { class: "axis-label", transform: `translate(${w + 44},${h / 2}) rotate(90)`, "text-anchor": "middle" }, frame, spec.y2.label);
  }
  container.replaceChildren(svg);
  if (spec.legend && spec.legend.length) container.appendChild(legend(spec.legend));
  return svg;
}

function drawLayer(area, frame, layer, x, y, w, h) {
  if (layer.type === "vline") {
    // Drawn on the frame, not the clipped area, so its label may sit at the top edge.
    const px = x(layer.x);
    const line = el("g", { class: `layer vline ${layer.cls || ""}`, "data-layer": layer.name || "vline", "data-x": layer.x }, frame);
    el("line", { x1: px, x2: px, y1: 0, y2: h }, line);
    if (layer.label) el("text", { x: px + 4, y: 12 }, line, layer.label);
    return;
  }
  const g = el("g", { class: `layer ${layer.type} ${layer.cls || ""}`, "data-layer": layer.name || layer.type }, area);
  if (layer.type === "bars") {
    for (const b of layer.data) {
      const x0 = x(b.x0);
      const x1 = x(b.x1);
      const top = y(b.y);
      el("rect", { x: x0 + 0.5, y: top, width: Math.max(0.5, x1 - x0 - 1), height: Math.max(0, y(y.domain[0]) - top) }, g)
        .appendChild(el("title", {}, null, b.title || ""));
    }
  } else if (layer.type === "band") {
    const upper = layer.data.map((p) => [x(p.x), y(clampTo(y, p.hi))]);
    const lower = layer.data.map((p) => [x(p.x), y(clampTo(y, p.lo))]).reverse();
    const d = path([...upper, ...lower]);
    if (d) el("path", { d: `${d}Z` }, g);
  } else if (layer.type === "line") {
    let pts = layer.data.map((p) => [x(p.x), p.y === null ? NaN : y(clampTo(y, p.y))]);
    if (layer.step) pts = steps(pts);
    el("path", { d: path(pts) }, g);
  } else if (layer.type === "points") {
    for (const p of layer.data) {
      if (p.y === null || p.y === undefined) continue;
      const px = x(p.x);
      const py = y(clampTo(y, p.y));
      const point = el("g", { class: "point", "data-x": p.x, "data-y": p.y }, g);
      if (p.lo !== undefined && p.lo !== null) {
        const hi = p.hi === null ? y.domain[1] : p.hi;
        el("line", { class: "whisker", x1: px, x2: px, y1: y(clampTo(y, p.lo)), y2: y(clampTo(y, hi)) }, point);
      }
      el("circle", { cx: px, cy: py, r: layer.r || 3.5 }, point).appendChild(el("title", {}, null, p.title || ""));
    }
  } else if (layer.type === "hline") {
    const py = y(layer.y);
    el("line", { x1: 0, x2: w, y1: py, y2: py }, g);
    if (layer.label) el("text", { x: w - 4, y: py - 4, "text-anchor": "end" }, g, layer.label);
  }
}

function clampTo(scale, v) {
  const [a, b] = scale.domain;
  return Math.min(Math.max(v, Math.min(a, b)), Math.max(a, b));
}

function steps(points) {
  const out = [];
  points.forEach((p, i) => {
    if (i > 0) out.push([p[0], points[i - 1][1]]);
    out.push(p);
  });
  return out;
}

function legend(items) {
  const list = document.createElement("ul");
  list.className = "legend";
  for (const item of items) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${item.cls || ""}`;
    li.append(swatch, document.createTextNode(item.label));
    list.appendChild(li);
  }
  return list;
}

// Redraw when the container's width changes (narrow windows, rotating a phone).
export function responsive(container, draw) {
  let last = container.clientWidth;
  draw();
  new ResizeObserver(() => {
    if (Math.abs(container.clientWidth - last) < 8) return;
    last = container.clientWidth;
    draw();
  }).observe(container);
}
