// Training pages: start a run from the form; on a run's page, follow its progress, draw its loss
// curves, show its latest sample grid, and audit its generator in one click.
import { api } from "./api.js";
import { extent, plot, responsive } from "./charts.js";

const form = document.getElementById("train-form");
if (form) {
  const problem = document.getElementById("train-problem");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const number = (name) => (data.get(name) === "" ? null : Number(data.get(name)));
    const body = {
      dataset: data.get("dataset"),
      loss: data.get("loss"),
      architecture: data.get("architecture"),
      latent_dim: number("latent_dim"),
      d_width: number("d_width"),
      g_width: number("g_width"),
      steps: number("steps"),
      seed: number("seed"),
      dataset_options: number("image_size") ? { image_size: number("image_size") } : {},
    };
    try {
      const run = await api("/api/training-runs", { method: "POST", json: body });
      window.location.assign(`/training/${run.id}`);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  });
}

const root = document.getElementById("run");
if (root) follow(root);

function follow(root) {
  const id = root.dataset.run;
  const chart = root.querySelector('[data-plot="losses"]');
  let losses = [];
  let shownGrid = null;

  const draw = () => {
    if (!losses.length) return;
    const names = Object.keys(losses[losses.length - 1].losses).slice(0, 4);
    const values = losses.flatMap((p) => names.map((n) => p.losses[n])).filter(Number.isFinite);
    plot(chart, {
      height: 240,
      x: { label: "step", domain: extent(losses.map((p) => p.step), { pad: 0 }) },
      y: { label: "loss", domain: extent(values) },
      layers: names.map((n, k) => ({
        type: "line",
        name: n,
        cls: `series-${k}`,
        data: losses.map((p) => ({ x: p.step, y: Number.isFinite(p.losses[n]) ? p.losses[n] : null })),
      })),
      legend: names.map((n, k) => ({ label: n, cls: `series-${k}` })),
    });
  };
  responsive(chart, draw);

  const refresh = async () => {
    const run = await api(`/api/training-runs/${id}`);
    root.querySelector("[data-status]").textContent = run.status;
    root.querySelector("[data-progress]").value = run.progress.step;
    root.querySelector("[data-step]").textContent = run.progress.step;
    const error = root.querySelector("[data-error]");
    error.textContent = run.error || "";
    error.hidden = !run.error;
    losses = await api(`/api/training-runs/${id}/losses`);
    draw();
    const steps = await api(`/api/training-runs/${id}/samples`);
    if (steps.length && steps[steps.length - 1] !== shownGrid) {
      shownGrid = steps[steps.length - 1];
      const img = root.querySelector("[data-grid]");
      img.src = `/api/training-runs/${id}/samples/${shownGrid}.png`;
      img.hidden = false;
      root.querySelector("[data-grid-step]").textContent = `at step ${shownGrid}`;
    }
    if (run.modes) {
      const list = root.querySelector("[data-modes-list]");
      list.replaceChildren();
      for (const [key, value] of Object.entries(run.modes)) {
        if (key === "counts" || key === "kind") continue;
        const dt = document.createElement("dt");
        dt.textContent = key;
        const dd = document.createElement("dd");
        dd.textContent = typeof value === "number" ? Number(value.toPrecision(4)) : String(value);
        list.append(dt, dd);
      }
      root.querySelector("[data-modes]").hidden = false;
    }
    if (run.generator_id) {
      root.dataset.generator = run.generator_id;
      root.querySelector("[data-audit]").hidden = !run.auditable;
      root.querySelector("[data-audit-note]").hidden = run.auditable;
      const byDiscriminator = root.querySelector("[data-audit-discriminator]");
      byDiscriminator.dataset.weights = run.discriminator || "";
      byDiscriminator.hidden = !run.discriminator;
    }
    return run.status === "queued" || run.status === "running";
  };

  const loop = async () => {
    let again = true;
    try {
      again = await refresh();
    } catch (error) {
      root.querySelector("[data-error]").textContent = error.message;
      root.querySelector("[data-error]").hidden = false;
    }
    if (again) setTimeout(loop, 1000);
  };
  loop();

  const startAudit = async (extra) => {
    const note = root.querySelector("[data-audit-note]");
    try {
      const audit = await api("/api/audits", {
        method: "POST",
        json: { generator_id: Number(root.dataset.generator), n: 2000, ...extra },
      });
      window.location.assign(`/audits/${audit.id}`);
    } catch (error) {
      note.textContent = error.message;
    }
  };
  root.querySelector("[data-audit]").addEventListener("click", () => startAudit({}));
  const byDiscriminator = root.querySelector("[data-audit-discriminator]");
  byDiscriminator.addEventListener("click", () =>
    startAudit({
      embedder: "discriminator",
      embedder_options: { weights: byDiscriminator.dataset.weights },
    }),
  );
}
