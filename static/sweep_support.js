// A sweep's support figure (GET /api/sweeps/{id}/support): N_eff against discriminator width on
// log-log axes, each run's audit, each cell's mean over seeds and the fitted N_eff ~ width^b,
// with the cells' table, the trend in words and the runs still out of the figure. Labels are
// given on other pages, so it reloads when this page is shown again and on demand.
import { api, showProblem, support } from "./api.js";
import { extent, plot, responsive } from "./charts.js";

const root = document.querySelector("[data-support]");
if (root) follow(root);

function follow(card) {
  const sweepId = card.dataset.support;
  const embedder = card.querySelector("[data-support-embedder]");
  const problem = card.querySelector("[data-problem]");
  const node = card.querySelector('[data-plot="support"]');
  let latest = null;
  let drawn = false;
  async function load() {
    const query = embedder.value ? `?embedder=${encodeURIComponent(embedder.value)}` : "";
    card.querySelector("[data-support-csv]").href = `/api/sweeps/${sweepId}/support.csv${query}`;
    // Estimates of large pools are built on first use after a restart: say what is happening.
    const busy = card.querySelector("[data-support-busy]");
    const slow = setTimeout(() => (busy.hidden = false), 400);
    try {
      latest = await api(`/api/sweeps/${sweepId}/support${query}`);
      showProblem(problem, null);
    } catch (error) {
      showProblem(problem, error);
      return;
    } finally {
      clearTimeout(slow);
      busy.hidden = true;
    }
    render(card, latest);
    if (!drawn) {
      drawn = true;
      responsive(node, () => drawPlot(node, latest));
    } else {
      drawPlot(node, latest);
    }
  }
  embedder.addEventListener("change", load);
  const extend = card.querySelector("[data-support-extend] button");
  extend.addEventListener("click", async () => {
    extend.disabled = true;
    try {
      const queued = await api(`/api/sweeps/${sweepId}/extend`, {
        method: "POST",
        json: { embedder: embedder.value || null },
      });
      followAudits(queued.map((a) => a.id), load);
      load();
    } catch (error) {
      showProblem(problem, error);
    } finally {
      extend.disabled = false;
    }
  });
  card.querySelector("[data-support-refresh]").addEventListener("click", load);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") load();
  });
  // A sweep audited from this page: its figure takes each audit in as its pool is finished.
  document.addEventListener("sweep-audited", (event) => followAudits(event.detail, load));
  load();
}

// Reload when each of these audits ends (one stream per 100, the server's cap); then let go.
function followAudits(ids, load) {
  for (let k = 0; k < ids.length; k += 100) followSome(ids.slice(k, k + 100), load);
}

function followSome(ids, load) {
  const pending = new Set(ids.map(String));
  const source = new EventSource(`/api/events?${ids.map((id) => `audit=${id}`).join("&")}`);
  // The first event of each is its progress with its status: an audit over already counts.
  const ended = (event) => {
    const data = JSON.parse(event.data);
    if (!["done", "failed", "cancelled"].includes(data.status) || !pending.has(String(data.audit_id))) return;
    pending.delete(String(data.audit_id));
    load();
    if (!pending.size) source.close();
  };
  source.addEventListener("progress", ended);
  source.addEventListener("status", ended);
}

const groupKey = (x) => `${x.loss}|${x.latent_dim}`;
const groupName = (x) => (x.latent_dim === null ? x.loss : `${x.loss}, latent ${x.latent_dim}`);
const pct = (level) => `${Math.round(level * 100)}%`;

// The select offers the embedders of the sweep's finished audits, as they come.
function offerEmbedders(select, embedders) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const name of embedders) {
    if (!have.has(name)) select.appendChild(new Option(`${name} only`, name));
  }
}

function render(card, data) {
  offerEmbedders(card.querySelector("[data-support-embedder]"), data.embedders);
  const trends = card.querySelector("[data-support-trends]");
  trends.replaceChildren(
    ...data.trends.map((t) => {
      const li = document.createElement("li");
      li.dataset.trend = groupKey(t);
      const strong = document.createElement("strong");
      strong.textContent = `N_eff ∝ width^${t.exponent.toFixed(2)}`;
      li.append(
        `${groupName(t)}: `,
        strong,
        ` (${pct(data.level)} interval ${t.exponent_low.toFixed(2)} to ${t.exponent_high.toFixed(2)}; ` +
          `p = ${t.p_value.toPrecision(2)} for no change with width; ${t.runs} runs at ${t.widths} widths${t.empty_pools ? `, ${t.empty_pools} with no duplicate` : ""}; ` +
          `between-run spread of log N_eff ${t.tau.toFixed(2)}). ` +
          (t.exponent_low > 0 ? "A wider discriminator buys a larger support here." : t.exponent_high < 0 ? "A wider discriminator gives a smaller support here." : "The width's effect is not resolved: more seeds or larger pools."),
      );
      return li;
    }),
  );
  const body = card.querySelector("tbody[data-support-cells]");
  body.replaceChildren(
    ...data.cells.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.cell = `${c.loss}|${c.latent_dim}|${c.d_width}`;
      for (const [text, num] of [
        [c.loss, false],
        [c.latent_dim ?? "default", true],
        [`${c.d_width}`, true],
        [`${c.runs}`, true],
        [support(c.n_eff), true],
        [`${support(c.n_eff_low)} – ${support(c.n_eff_high)}`, false],
      ]) {
        const td = document.createElement("td");
        if (num) td.className = "num";
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  const empty = card.querySelector("[data-support-empty]");
  empty.hidden = data.cells.length > 0;
  if (!empty.dataset.text) empty.dataset.text = empty.textContent;
  empty.textContent = data.runs.some((r) => r.waiting_for === "samples")
    ? "No cell has a pool with a duplicate yet: each such pool only bounds its N_eff from below. Extend those pools (below)."
    : empty.dataset.text;
  card.querySelector("[data-support-table]").hidden = data.cells.length === 0;
  card.querySelector("[data-support-level]").textContent = pct(data.level);
  const next = card.querySelector("[data-support-next]");
  next.hidden = data.next_review === null;
  if (data.next_review) {
    const { audit_id: auditId, run_id: runId, labels_to_go: toGo } = data.next_review;
    const link = next.querySelector("a");
    link.href = `/audits/${auditId}/review?sweep=${card.dataset.support}`;
    link.textContent = `Review audit #${auditId} next`;
    next.querySelector("span").textContent =
      `run ${runId}, about ${toGo} label${toGo === 1 ? "" : "s"} to go; the review page leads on to the sweep's next audit when its queue ends`;
  }
  const notes = card.querySelector("[data-support-notes]");
  notes.replaceChildren(...data.notes.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
  card.querySelector("[data-support-extend]").hidden = !data.runs.some((r) => r.waiting_for === "samples");
  // Runs left out, and runs in only as a lower bound (a pool with no duplicate), with why.
  const left = data.runs.filter((r) => !r.used);
  const bounds = data.runs.filter((r) => r.used && r.waiting_for);
  // in the figure, their review done, but wider than the target until their pools grow
  const wide = data.runs.filter((r) => r.used && !r.waiting_for && r.reason);
  const details = card.querySelector("[data-support-left]");
  details.hidden = left.length + bounds.length + wide.length === 0;
  const parts = [];
  if (left.length) parts.push(`${left.length} run${left.length === 1 ? "" : "s"} not in the figure`);
  if (bounds.length) parts.push(`${bounds.length} in it as a lower bound only`);
  if (wide.length) parts.push(`${wide.length} wider than the target until a larger pool`);
  details.querySelector("summary").textContent = parts.join(", ");
  details.querySelector("ul").replaceChildren(
    ...[...left, ...bounds, ...wide].map((r) => {
      const li = document.createElement("li");
      li.dataset.run = r.run_id;
      const link = document.createElement("a");
      link.href = r.audit_id === null ? `/training/${r.run_id}` : `/audits/${r.audit_id}/review`;
      link.textContent = r.audit_id === null ? `run ${r.run_id}` : `run ${r.run_id} (audit ${r.audit_id})`;
      li.append(link, `: ${r.reason}`);
      return li;
    }),
  );
}

function drawPlot(node, data) {
  const used = data.runs.filter((r) => r.used);
  if (!used.length) {
    node.replaceChildren();
    return;
  }
  const groups = [...new Set([...data.cells, ...used].map(groupKey))];
  const series = (x) => `series-${groups.indexOf(groupKey(x)) % 4}`;
  const widths = used.map((r) => r.d_width);
  const xDomain = extent(widths, { log: true, pad: 0.15 });
  // What is drawn: each run's point (or bound) and each cell's interval. A run's own upper end is
  // not drawn, and one near 1e10 (a fresh review) would squash the figure into one line.
  const values = [...used.map((r) => r.n_eff ?? r.n_eff_low), ...data.cells.flatMap((c) => [c.n_eff_low, c.n_eff_high])].filter((v) => v);
  const layers = [];
  for (const t of data.trends) {
    const line = xDomain.map((w) => ({ x: w, y: t.n_eff_at_width_1 * w ** t.exponent }));
    layers.push({ type: "line", data: line, cls: `c-trend ${series(t)}`, name: `trend ${groupKey(t)}` });
  }
  for (const key of groups) {
    const runs = used.filter((r) => groupKey(r) === key);
    const cells = data.cells.filter((c) => groupKey(c) === key);
    const name = groupName(runs[0] || cells[0]);
    layers.push({
      type: "points",
      cls: `c-run ${series(runs[0] || cells[0])}`,
      name: `runs ${key}`,
      r: 2.5,
      data: runs.map((r) => ({ x: r.d_width * 0.97, y: r.n_eff, title: `run ${r.run_id} (${name}, seed ${r.seed}, audit ${r.audit_id}): N_eff ${support(r.n_eff)}, ${pct(data.level)} interval ${support(r.n_eff_low)} – ${support(r.n_eff_high)}` })),
    });
    const bounded = runs.filter((r) => r.n_eff === null && r.n_eff_low);
    layers.push({
      type: "points",
      cls: `c-run c-bound ${series(runs[0] || cells[0])}`,
      name: `bounds ${key}`,
      r: 2.5,
      data: bounded.map((r) => ({ x: r.d_width * 0.97, y: r.n_eff_low, lo: r.n_eff_low, hi: null, title: `run ${r.run_id} (${name}, seed ${r.seed}, audit ${r.audit_id}): no duplicate in its pool, N_eff ≥ ${support(r.n_eff_low)} (${pct(data.level)})` })),
    });
    layers.push({
      type: "points",
      cls: `c-cell ${series(runs[0] || cells[0])}`,
      name: `cells ${key}`,
      r: 5,
      data: cells.map((c) => ({ x: c.d_width * 1.03, y: c.n_eff, lo: c.n_eff_low, hi: c.n_eff_high, title: `${name}, width ${c.d_width}: N_eff ${support(c.n_eff)} over ${c.runs} run${c.runs === 1 ? "" : "s"}, ${pct(data.level)} interval ${support(c.n_eff_low)} – ${support(c.n_eff_high)}` })),
    });
  }
  plot(node, {
    title: "N_eff against discriminator width",
    height: 280,
    x: { label: "discriminator width (log scale)", log: true, domain: xDomain },
    y: { label: "N_eff (log scale)", log: true, domain: extent(values, { log: true, pad: 0.08 }) },
    layers,
    legend: [
      ...groups.map((key, k) => ({ cls: `series-${k % 4}`, label: groupName(data.cells.find((c) => groupKey(c) === key) || used.find((r) => groupKey(r) === key)) })),
      { cls: "c-run", label: "a run's audit" },
      ...(used.some((r) => r.n_eff === null) ? [{ cls: "c-run c-bound", label: "no duplicate: a lower bound" }] : []),
      { cls: "c-cell", label: `cell mean over seeds, ${pct(data.level)} interval` },
    ],
  });
}
