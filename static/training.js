// Training pages: start a run from the form; on a run's page, follow its progress, draw its loss
// curves, show its latest sample grid, and audit its generator in one click.
import { api, count, showProblem } from "./api.js";
import { extent, plot, responsive } from "./charts.js";

// The API's locations of the fields the run and sweep forms send, in the forms' own words (see
// showProblem): a refusal names the field as its label does.
const KNOB_LABELS = {
  dataset: "dataset",
  architecture: "architecture",
  g_width: "generator width",
  steps: "steps",
  "dataset_options.image_size": "image size",
  "dataset_options.path": "data file",
  batch_size: "batch size",
  lr: "learning rate",
  betas: "Adam β1, β2",
  "betas.*": { label: "Adam β1, β2", item: "value" },
  d_steps: "D steps per G step",
  gp_weight: "gradient penalty λ",
  "architecture_options.base_width": "base width",
  "architecture_options.d_norm": "D normalisation",
  "architecture_options.hidden": "hidden units",
  "architecture_options.depth": "hidden layers",
};
const RUN_LABELS = {
  ...KNOB_LABELS,
  loss: "loss",
  latent_dim: "latent size",
  d_width: "discriminator width",
  seed: "seed",
};
const SWEEP_LABELS = {
  ...KNOB_LABELS,
  losses: "losses",
  "losses.*": { label: "losses", item: "loss" },
  latent_dims: "latent sizes",
  "latent_dims.*": { label: "latent sizes", item: "value" },
  d_widths: "discriminator widths",
  "d_widths.*": { label: "discriminator widths", item: "value" },
  seeds: "seeds",
  "seeds.*": { label: "seeds", item: "value" },
};

// A number field as the API takes it: a blank one is left out, so the server's default holds
// (read as 0 it was refused as "batch size: must be >= 1", or worse, taken).
const numberOf = (data, name) => (String(data.get(name) ?? "").trim() === "" ? undefined : Number(data.get(name)));

// Each loss's paper's lr, betas and D steps (the server's app.gan.training.loop_defaults): what
// a blank field trains with, shown as its placeholder.
const PAPER_LOOPS = JSON.parse(document.getElementById("paper-loops")?.textContent || "{}");
const PAPER_FIELDS = {
  lr: (loop) => loop.lr,
  beta1: (loop) => loop.betas[0],
  beta2: (loop) => loop.betas[1],
  d_steps: (loop) => loop.d_steps,
};

// The loop the losses' papers share, field by field; undefined where they differ.
function sharedLoop(losses) {
  const loops = losses.map((loss) => PAPER_LOOPS[loss]).filter(Boolean);
  const shared = {};
  for (const [name, get] of Object.entries(PAPER_FIELDS)) {
    const values = new Set(loops.map(get));
    shared[name] = values.size === 1 ? get(loops[0]) : undefined;
  }
  return shared;
}

// A form's blank lr, betas and D steps show what they will train with for the chosen loss(es).
function followPaperLoop(form, chosenLosses) {
  const update = () => {
    const shared = sharedLoop(chosenLosses());
    for (const input of form.querySelectorAll("[data-paper]")) {
      const value = shared[input.dataset.paper];
      input.placeholder = value === undefined ? "each loss's own" : String(value);
    }
  };
  form.addEventListener("change", update);
  update();
}

// A refusal of the form's own, before anything is sent.
class FormProblem extends Error {}

const ACTIVE = ["queued", "running"];
const POLL_MS = 3000; // only while the stream is down
const MAX_STREAMED = 100; // runs per stream (GET /api/events)

const form = document.getElementById("train-form");
if (form) {
  const problem = document.getElementById("train-problem");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const number = (name) => numberOf(data, name);
    const knobs = knobsOrProblem(data, [data.get("loss")], problem);
    if (!knobs) return;
    const body = {
      dataset: data.get("dataset"),
      loss: data.get("loss"),
      architecture: data.get("architecture"),
      latent_dim: number("latent_dim"),
      d_width: number("d_width"),
      g_width: number("g_width"),
      steps: number("steps"),
      seed: number("seed"),
      dataset_options: datasetOptions(data),
      ...knobs,
    };
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true; // one run per click: a double click queued two
    try {
      const run = await api("/api/training-runs", { method: "POST", json: body });
      window.location.assign(`/training/${run.id}`);
    } catch (error) {
      showProblem(problem, error, RUN_LABELS);
      button.disabled = false;
    }
  });
}

for (const f of [form, document.getElementById("sweep-form")]) if (f) showPathField(f);
if (form) followPaperLoop(form, () => [form.querySelector('select[name="loss"]').value]);

// image_size and path (a file under data/datasets/) as the form gives them; neither when blank.
function datasetOptions(data) {
  const options = {};
  const imageSize = Number(data.get("image_size"));
  if (imageSize) options.image_size = imageSize;
  const path = String(data.get("path") || "").trim();
  if (path) options.path = path;
  return options;
}

// The optimiser's settings and the networks' sizes; a blank size is the architecture's default
// (the server says which sizes an architecture takes), a blank lr, beta or D steps the losses'
// papers' (left out: the server fills it in per loss).
function loopKnobs(data, losses) {
  const sizes = {};
  for (const name of ["base_width", "hidden", "depth"]) {
    const value = numberOf(data, name);
    if (value !== undefined) sizes[name] = value;
  }
  if (data.get("d_norm")) sizes.d_norm = data.get("d_norm");
  return {
    batch_size: numberOf(data, "batch_size"),
    lr: numberOf(data, "lr"),
    betas: betasOf(data, losses),
    d_steps: numberOf(data, "d_steps"),
    gp_weight: numberOf(data, "gp_weight"),
    architecture_options: sizes,
  };
}

// The form's loop knobs, or undefined with the form's own refusal shown in `problem`.
function knobsOrProblem(data, losses, problem) {
  try {
    return loopKnobs(data, losses);
  } catch (error) {
    if (!(error instanceof FormProblem)) throw error;
    problem.hidden = false;
    problem.textContent = error.message;
    return undefined;
  }
}

// Adam's betas go as a pair: a blank one takes its slot's value from the losses' papers (not 0),
// which a grid of losses whose papers differ there cannot give. With no loss checked there is
// no paper to ask: the server's refusal of the empty grid is the message that helps.
function betasOf(data, losses) {
  const given = [numberOf(data, "beta1"), numberOf(data, "beta2")];
  if (given.every((beta) => beta === undefined) || losses.length === 0) return undefined;
  const shared = sharedLoop(losses);
  const pair = given.map((beta, i) => beta ?? shared[`beta${i + 1}`]);
  if (pair.includes(undefined)) {
    throw new FormProblem("Adam β1, β2: give both or neither; the losses' papers differ in the blank one.");
  }
  return pair;
}

// The data file field shows for the datasets that read one: required (npz, folder) or optional
// (MNIST: all of a keras mnist.npz instead of the packaged digits).
function showPathField(form) {
  const select = form.querySelector('select[name="dataset"]');
  const field = form.querySelector("[data-path-field]");
  const input = field.querySelector("input");
  const update = () => {
    const use = select.selectedOptions[0]?.dataset.path || "none";
    field.hidden = use === "none";
    input.required = use === "required";
    input.placeholder = use === "required" ? "images.npz or a folder" : "mnist.npz (optional)";
    if (field.hidden) input.value = "";
  };
  select.addEventListener("change", update);
  update();
}

const root = document.getElementById("run");
if (root) followRun(root);
const sweep = document.getElementById("sweep");
if (document.querySelector("tr[data-run]")) followList(sweep ? () => refreshCells(sweep) : null);
if (sweep) {
  auditAll(sweep);
  cancelSweep(sweep);
}
const sweepForm = document.getElementById("sweep-form");
if (sweepForm) {
  startSweep(sweepForm);
  const checked = () => [...sweepForm.querySelectorAll('input[name="losses"]:checked')].map((box) => box.value);
  followPaperLoop(sweepForm, checked);
}

// "0.5, 1, 2" -> [0.5, 1, 2]; a blank field is left out, so the server's default holds
// (latent sizes: the architecture's own).
const numbers = (text) => {
  const values = String(text ?? "")
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  return values.length ? values : undefined;
};

function startSweep(form) {
  const problem = document.getElementById("sweep-problem");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const knobs = knobsOrProblem(data, data.getAll("losses"), problem);
    if (!knobs) return;
    const body = {
      dataset: data.get("dataset"),
      architecture: data.get("architecture"),
      losses: data.getAll("losses"),
      latent_dims: numbers(data.get("latent_dims")),
      d_widths: numbers(data.get("d_widths")),
      seeds: numbers(data.get("seeds")),
      g_width: numberOf(data, "g_width"),
      steps: numberOf(data, "steps"),
      dataset_options: datasetOptions(data),
      ...knobs,
    };
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true; // one sweep per click
    try {
      const created = await api("/api/sweeps", { method: "POST", json: body });
      window.location.assign(`/sweeps/${created.id}`);
    } catch (error) {
      showProblem(problem, error, SWEEP_LABELS);
      button.disabled = false;
    }
  });
}

// Stop the sweep's unfinished runs; the rows follow their statuses on the stream.
function cancelSweep(root) {
  const button = root.querySelector("[data-cancel-sweep]");
  const box = root.querySelector("[data-sweep-audits] [data-problem]");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/api/sweeps/${root.dataset.sweep}/cancel`, { method: "POST" });
      button.hidden = true;
    } catch (error) {
      showProblem(box, error);
      button.disabled = false;
    }
  });
}

// The results table again, from the server, when one of the sweep's runs ends.
async function refreshCells(root) {
  const response = await fetch(`/sweeps/${root.dataset.sweep}/cells`);
  if (response.ok) root.querySelector("[data-cells]").innerHTML = await response.text();
}

// Audit every finished generator of the sweep; the link compares all the sweep's audits.
function auditAll(root) {
  const card = root.querySelector("[data-sweep-audits]");
  const form = card.querySelector("[data-audit-all]");
  if (!form) return;
  const box = card.querySelector("[data-problem]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(box, null);
    const button = form.querySelector("button");
    button.disabled = true;
    const data = new FormData(form);
    try {
      const queued = await api(`/api/sweeps/${root.dataset.sweep}/audits`, {
        method: "POST",
        json: {
          n: Number(data.get("n")),
          embedder: data.get("embedder"),
          seed: Number(data.get("seed")),
          target: Number(data.get("target_pct")) / 100,
        },
      });
      const { audits } = await api(`/api/sweeps/${root.dataset.sweep}`);
      const link = card.querySelector("[data-compare]");
      link.innerHTML = "";
      const a = document.createElement("a");
      a.href = `/compare?ids=${audits.join(",")}`;
      a.textContent = `Compare the sweep's ${audits.length} audits`;
      link.append(a, ` (${queued.length} just queued: ${queued.map((q) => `#${q.id}`).join(", ")})`);
      link.hidden = false;
      document.dispatchEvent(new CustomEvent("sweep-audited", { detail: queued.map((q) => q.id) }));
    } catch (error) {
      showProblem(box, error);
    } finally {
      button.disabled = false;
    }
  });
}

// The list of runs: the active ones' steps and statuses on one stream while the page is shown
// (a sweep queues dozens); a run that ends fills in its modes and generator.
function followList(onEnded) {
  const rowOf = (id) => document.querySelector(`tr[data-run="${id}"]`);
  const active = () =>
    [...document.querySelectorAll("tr[data-run]")]
      .filter((row) => ACTIVE.includes(row.dataset.state))
      .map((row) => row.dataset.run);
  const setStatus = (row, status) => {
    row.dataset.state = status;
    const badge = row.querySelector("[data-status]");
    badge.textContent = status;
    badge.className = `badge status-${status}`;
  };
  const setSteps = (row, step, steps) => {
    const bar = row.querySelector("progress");
    bar.max = steps;
    bar.value = step;
    bar.title = `${step} / ${steps} steps`;
    row.querySelector("[data-done]").textContent = count(step);
    row.querySelector("[data-n]").textContent = count(steps);
  };
  const ended = async (row) => {
    const run = await api(`/api/training-runs/${row.dataset.run}`);
    setSteps(row, run.progress.step, run.progress.steps);
    const modes = run.modes || {};
    const captured = modes.modes_captured ?? modes.segments_captured;
    if (captured !== undefined) {
      row.querySelector("[data-modes]").textContent = `${captured} / ${modes.n_modes ?? modes.n_segments}`;
    }
    if (run.generator_id) row.querySelector("[data-generator]").textContent = `#${run.generator_id}`;
    // The sweep page shows each run's last sample grid (every run saves one at its end).
    const grid = row.querySelector("[data-final-grid]");
    if (grid && run.status === "done") {
      grid.src = `/api/training-runs/${run.id}/samples/${run.progress.step}.png`;
      grid.hidden = false;
    }
  };

  let source = null;
  const follow = () => {
    source?.close();
    source = null;
    const ids = active().slice(0, MAX_STREAMED);
    if (!ids.length || document.visibilityState !== "visible") return;
    source = new EventSource(`/api/events?${ids.map((id) => `training_run=${id}`).join("&")}`);
    const update = (data) => {
      const row = rowOf(data.training_run_id);
      if (!row) return;
      if (data.step !== undefined) setSteps(row, data.step, data.steps);
      if (!data.status) return;
      const wasActive = ACTIVE.includes(row.dataset.state);
      setStatus(row, data.status);
      if (ACTIVE.includes(data.status)) return;
      if (wasActive) {
        ended(row).catch(() => {}); // the row keeps what it shows
        onEnded?.()?.catch(() => {});
      }
      if (!active().length) {
        follow(); // all ended: let the connection go
        document.querySelector("[data-cancel-sweep]")?.setAttribute("hidden", "");
      }
    };
    source.addEventListener("progress", (event) => update(JSON.parse(event.data)));
    source.addEventListener("status", (event) => update(JSON.parse(event.data)));
  };
  follow();
  document.addEventListener("visibilitychange", follow);
}

// The run's page follows its events while shown: each logged loss point and new sample grid as
// they come (no polling); at the end one fetch of the run for its modes and generator. A hidden
// page lets its connection go (a browser has ~6 per host for all its tabs) and catches up when
// shown again.
function followRun(root) {
  const id = root.dataset.run;
  const chart = root.querySelector('[data-plot="losses"]');
  const modeLabels = JSON.parse(root.querySelector("[data-modes-list]").dataset.labels);
  const losses = new Map(); // step -> losses, as GET /losses has them
  let shownGrid = null;

  const draw = () => {
    if (!losses.size) return;
    const points = [...losses].sort((a, b) => a[0] - b[0]).map(([step, l]) => ({ step, losses: l }));
    const names = Object.keys(points[points.length - 1].losses).slice(0, 4);
    const values = points.flatMap((p) => names.map((n) => p.losses[n])).filter(Number.isFinite);
    plot(chart, {
      height: 240,
      x: { label: "step", domain: extent(points.map((p) => p.step), { pad: 0 }) },
      y: { label: "loss", domain: extent(values) },
      layers: names.map((n, k) => ({
        type: "line",
        name: n,
        cls: `series-${k}`,
        data: points.map((p) => ({ x: p.step, y: Number.isFinite(p.losses[n]) ? p.losses[n] : null })),
      })),
      legend: names.map((n, k) => ({ label: n, cls: `series-${k}` })),
    });
  };
  responsive(chart, draw);

  const addLosses = (step, values) => {
    // A resumed run trains again from its last saved state: later points were a lost attempt's.
    for (const logged of losses.keys()) if (logged >= step) losses.delete(logged);
    losses.set(step, values);
  };
  const showGrid = (step) => {
    if (step === shownGrid || (shownGrid !== null && step < shownGrid)) return;
    shownGrid = step;
    const img = root.querySelector("[data-grid]");
    img.src = `/api/training-runs/${id}/samples/${step}.png`;
    img.hidden = false;
    root.querySelector("[data-grid-step]").textContent = `at step ${step}`;
  };
  const showProgress = (step, status) => {
    root.querySelector("[data-progress]").value = step;
    root.querySelector("[data-step]").textContent = step;
    if (status) {
      root.dataset.state = status;
      root.querySelector("[data-status]").textContent = status;
      const cancel = root.querySelector("[data-cancel-run]");
      if (cancel) cancel.hidden = !ACTIVE.includes(status);
    }
  };
  const showError = (message) => {
    const error = root.querySelector("[data-error]");
    error.textContent = message || "";
    error.hidden = !message;
  };

  // Everything at once: on opening, after a hidden spell, at the end, and while the stream is down.
  const refresh = async () => {
    const [run, points, steps] = await Promise.all([
      api(`/api/training-runs/${id}`),
      api(`/api/training-runs/${id}/losses`),
      api(`/api/training-runs/${id}/samples`),
    ]);
    showProgress(run.progress.step, run.status);
    showError(run.error);
    // Merged, not replaced: a point streamed while this was on its way stays.
    for (const p of points) losses.set(p.step, p.losses);
    draw();
    if (steps.length) showGrid(steps[steps.length - 1]);
    if (run.modes) {
      const list = root.querySelector("[data-modes-list]");
      list.replaceChildren();
      for (const [key, value] of Object.entries(run.modes)) {
        if (key === "counts" || key === "kind") continue;
        const dt = document.createElement("dt");
        dt.textContent = modeLabels[key] || key;
        dt.title = key;
        const dd = document.createElement("dd");
        if (key === "classifier") {
          dd.dataset.classifier = "";
          dd.textContent = describeClassifier(value);
        } else {
          dd.textContent = typeof value === "number" ? Number(value.toPrecision(4)) : String(value);
        }
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
    return run.status;
  };
  const safely = (work) => work().catch((error) => showError(error.message));

  let stream = null;
  const openStream = () => {
    const source = new EventSource(`/api/training-runs/${id}/events`);
    let first = true;
    source.addEventListener("progress", (event) => {
      const p = JSON.parse(event.data);
      if (first) {
        // The stream's first event is the run as it is now: catch up on what came before it.
        first = false;
        safely(async () => {
          if (!ACTIVE.includes(await refresh())) follow();
        });
        return;
      }
      showProgress(p.step, null);
      if (p.losses) {
        addLosses(p.step, p.losses);
        draw();
      }
      if (p.grid !== null && p.grid !== undefined) showGrid(p.grid);
    });
    source.addEventListener("status", (event) => {
      const { status, error } = JSON.parse(event.data);
      showProgress(Number(root.querySelector("[data-step]").textContent), status);
      showError(error);
      if (!ACTIVE.includes(status)) {
        follow(); // ended: let the connection go, then read its modes and generator
        safely(refresh);
      }
    });
    return source;
  };
  const follow = () => {
    stream?.close();
    const live = ACTIVE.includes(root.dataset.state) && document.visibilityState === "visible";
    stream = live ? openStream() : null;
  };

  root.querySelector("[data-cancel-run]")?.addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await api(`/api/jobs/${button.dataset.cancelRun}/cancel`, { method: "POST" });
      button.textContent = "cancelling…"; // the stream says when it has stopped
    } catch (error) {
      showError(error.message);
      button.disabled = false;
    }
  });

  if (ACTIVE.includes(root.dataset.state)) {
    follow();
    document.addEventListener("visibilitychange", follow);
    setInterval(() => {
      if (stream && stream.readyState !== EventSource.OPEN) safely(refresh);
    }, POLL_MS);
  } else {
    safely(refresh); // an ended run: its curves and grid, once
  }

  const startAudit = async (extra) => {
    // One audit per click: both buttons wait for the answer (a double click queued two).
    const buttons = root.querySelectorAll("[data-audit], [data-audit-discriminator]");
    const box = root.querySelector("[data-audit-problem]");
    showProblem(box, null);
    buttons.forEach((b) => (b.disabled = true));
    try {
      const audit = await api("/api/audits", {
        method: "POST",
        json: { generator_id: Number(root.dataset.generator), n: 2000, ...extra },
      });
      window.location.assign(`/audits/${audit.id}`);
    } catch (error) {
      showProblem(box, error);
      buttons.forEach((b) => (b.disabled = false));
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

// The classifier that counted a digit run's modes, as the page's template words it.
function describeClassifier(c) {
  const source = c.source === "packaged" ? "the packaged digits" : `your digits file (${c.source})`;
  const size = c.train_digits ? ` (${count(c.train_digits)} of them)` : "";
  return `${c.digits}, learnt from ${source}${size}: ${(100 * c.held_out_accuracy).toFixed(1)}% right on held-out digits`;
}
