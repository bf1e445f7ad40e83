// The upload and new-audit forms: send to the REST API, show its problem details next to the form.
import { api, ApiError, count, showProblem } from "./api.js";

// The API's locations of the fields each form sends, in the form's own words (see showProblem).
const UPLOAD_LABELS = {
  name: "Name",
  format: "Format",
  file: "File",
  architecture: "Architecture",
  latent_dim: "Latent size",
  options: "Options",
};
const AUDIT_LABELS = {
  generator_id: "generator",
  "synthetic.support": "support K",
  "synthetic.zipf": "Zipf",
  "synthetic.noise": "noise",
  "synthetic.continuous": "continuous",
  n: "Pool size n",
  embedder: "Embedder",
  embedder_options: "Embedder options",
  seed: "Seed",
  neighbours: "Neighbours k",
  miner: "Miner",
  random_pairs: "Random pairs",
  target: { label: "Aim for ±", percent: true }, // the form asks in percent, sends pct / 100
};

// POST multipart with upload progress (generators can be hundreds of MB), resolving to the JSON body.
function postMultipart(url, data, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && body.detail) || `${xhr.status} ${xhr.statusText}`, body));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload did not reach the server")));
    xhr.send(data);
  });
}

function uploadForm(form) {
  const box = form.querySelector("[data-problem]");
  const bar = form.querySelector("[data-upload-progress]");
  const format = form.elements.format;
  const weightsOnly = () => {
    for (const el of document.querySelectorAll("[data-weights-only]")) el.hidden = format.value === "samples";
  };
  format.addEventListener("change", weightsOnly);
  weightsOnly();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(box, null);
    if (!form.elements.name.value.trim()) return showProblem(box, new ApiError(0, "Give the generator a name."));
    if (!form.elements.file.files.length) return showProblem(box, new ApiError(0, "Choose a file to upload."));
    const data = new FormData(form);
    for (const key of ["architecture", "latent_dim", "options"]) {
      if (!String(data.get(key) ?? "").trim() || format.value === "samples") data.delete(key);
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    try {
      const generator = await postMultipart("/api/generators", data, (share) => (bar.value = share));
      uploaded(generator);
    } catch (error) {
      showProblem(box, error, UPLOAD_LABELS);
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
  });
}

function uploaded(generator) {
  const section = document.querySelector("[data-uploaded]");
  section.hidden = false;
  section.querySelector("[data-generator-name]").textContent = `#${generator.id} ${generator.name}`;
  const shape = generator.image_shape ? generator.image_shape.join("×") : "?";
  const latent = generator.latent_dim ? `, latent size ${generator.latent_dim}` : "";
  const samples = generator.samples ? `, ${count(generator.samples)} of them (the largest pool an audit can draw)` : "";
  section.querySelector("[data-generator-summary]").textContent =
    `${generator.format}${generator.architecture ? ` ${generator.architecture}` : ""}: images ${shape}${samples}${latent}; status ${generator.status}.`;
  const auditForm = section.querySelector("[data-audit-form]");
  auditForm.dataset.generator = generator.id;
  fitPool(auditForm, generator.samples);
  section.scrollIntoView({ block: "nearest" });
}

// Any finite number Number() reads (.5, 1e-3, -2); not a blank (Number("") is 0), nor what a
// number input could not read (its value is then "" and validity.badInput is set).
function numberField(form, name, label, problems) {
  const field = form.elements[name];
  const raw = String(field?.value ?? "").trim();
  const value = raw && !field?.validity?.badInput ? Number(raw) : NaN;
  if (!Number.isFinite(value)) {
    problems.push(`${label} must be a number`);
    return null;
  }
  return value;
}

function auditBody(form) {
  const problems = [];
  const body = {
    n: numberField(form, "n", "Pool size n", problems),
    embedder: form.elements.embedder.value,
    seed: numberField(form, "seed", "Seed", problems),
  };
  if (form.elements.miner) body.miner = form.elements.miner.value;
  if (form.elements.random_pairs) body.random_pairs = numberField(form, "random_pairs", "Random pairs", problems);
  if (form.elements.target_pct) {
    const pct = numberField(form, "target_pct", "Aim for ±", problems);
    if (pct !== null) body.target = pct / 100;
  }
  const neighbours = form.elements.neighbours;
  if (neighbours && (String(neighbours.value).trim() || neighbours.validity.badInput)) {
    body.neighbours = numberField(form, "neighbours", "Neighbours k", problems);
  }
  const options = String(form.elements.embedder_options?.value ?? "").trim();
  if (options) {
    try {
      body.embedder_options = JSON.parse(options);
    } catch {
      problems.push("Embedder options must be JSON");
    }
    const value = body.embedder_options;
    if (value !== undefined && (value === null || typeof value !== "object" || Array.isArray(value))) {
      problems.push('Embedder options must be a JSON object, e.g. {"weights": "…"}');
    }
  }
  for (const [key, field] of [
    ["weights", form.elements.weights],
    ["model", form.elements.clip_model],
  ]) {
    const value = field && !field.closest("label").hidden ? String(field.value).trim() : "";
    if (!value) continue;
    body.embedder_options ??= {};
    const given = body.embedder_options[key];
    if (given !== undefined && given !== value) {
      problems.push(`${key} is given twice: ${JSON.stringify(given)} in the options, ${JSON.stringify(value)} in its field`);
    }
    body.embedder_options[key] = value;
  }
  const source = form.elements.source?.value || "generator";
  if (form.dataset.generator) {
    body.generator_id = Number(form.dataset.generator);
  } else if (source === "synthetic") {
    body.synthetic = {
      support: numberField(form, "support", "K", problems),
      zipf: numberField(form, "zipf", "Zipf", problems),
      noise: numberField(form, "noise", "noise", problems),
      continuous: numberField(form, "continuous", "continuous", problems),
    };
  } else {
    body.generator_id = Number(form.elements.generator_id.value);
  }
  return { body, problems };
}

// The weights field lists the checkpoints under the models directory that fit the chosen
// embedder (GET /api/embedders), with "default" where its weights are optional; CLIP also
// names its architecture.
async function weightsPicker(form) {
  const select = form.elements.weights;
  const field = form.querySelector("[data-weights-field]");
  const model = form.querySelector("[data-model-field]");
  let choices;
  try {
    choices = await api("/api/embedders");
  } catch {
    return; // the JSON options still say everything
  }
  const update = () => {
    const embedder = choices.embedders.find((e) => e.name === form.elements.embedder.value);
    model.hidden = embedder?.name !== "clip";
    field.hidden = !embedder || embedder.weights === "none";
    select.replaceChildren();
    if (field.hidden) return;
    const files = choices.files.filter((f) => f.kind === embedder.file_kind);
    // Required weights are chosen, never guessed: another run's discriminator would embed quietly.
    if (embedder.weights === "optional") select.append(new Option("default", ""));
    else select.append(new Option(files.length ? "choose a checkpoint" : "none under models/", ""));
    for (const f of files) select.append(new Option(f.path, f.path));
  };
  form.elements.embedder.addEventListener("change", update);
  update();
}

// An archive's pool is at most its image count: the n field's bound and default follow it.
function fitPool(form, samples) {
  const n = form.elements.n;
  if (!n) return;
  n.dataset.default ??= n.value;
  n.max = samples || 1000000;
  n.value = samples ? Math.min(Number(n.dataset.default), samples) : n.dataset.default;
}

function auditForm(form) {
  weightsPicker(form);
  const picker = form.elements.generator_id;
  if (picker) {
    const fit = () => fitPool(form, Number(picker.selectedOptions[0]?.dataset.samples) || null);
    picker.addEventListener("change", fit);
    fit();
  }
  const box = form.querySelector("[data-problem]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { body, problems } = auditBody(form);
    if (problems.length) return showProblem(box, new ApiError(0, `${problems.join("; ")}.`));
    showProblem(box, null);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const audit = await api("/api/audits", { method: "POST", json: body });
      location.assign(`/audits/${audit.id}`);
    } catch (error) {
      showProblem(box, error, AUDIT_LABELS);
      button.disabled = false;
    }
  });
}

document.querySelectorAll("[data-upload-form]").forEach(uploadForm);
document.querySelectorAll("[data-audit-form]").forEach(auditForm);
