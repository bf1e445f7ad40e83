// The review loop: one pair on screen, judged by keyboard, with undo and history, while the next
// pairs (JSON and decoded images) wait in memory so that the next one shows without the network.
//
// The server decides what each annotator sees: GET next-pairs hands out the pairs the review
// design wants next, in its order, and leases them; the lookahead is refilled from it after every
// judgement. Every POST carries an Idempotency-Key, reused on retries, so a retry never doubles a label.
import { api, ApiError, count, support, uuid } from "./api.js";

const root = document.querySelector("[data-review]");
const auditId = Number(root.dataset.audit);
const LOOKAHEAD = 5; // pairs prefetched beyond the one on screen
const GAIN = 4; // the difference view multiplies |A - B| by this
const NAME_KEY = "birthday.annotator";
// the server's rule (app/schemas.py ANNOTATOR_NAME): no space at either end
const NAME_RE = /^(?=.{1,100}$)[\w.@-]([\w .@-]*[\w.@-])?$/;
const ACTIVE = new Set(["queued", "running"]);
const channel = new BroadcastChannel(`birthday-audit-${auditId}`);

const $ = (selector) => root.querySelector(selector);
const labels = (k) => `${count(k)} label${k === 1 ? "" : "s"}`;
const ui = {
  view: $("[data-pair-view]"),
  slotA: $('[data-slot="a"]'),
  slotB: $('[data-slot="b"]'),
  captionA: $('[data-caption="a"]'),
  captionB: $('[data-caption="b"]'),
  diff: $("[data-diff]"),
  meanDiff: $("[data-mean-diff]"),
  rank: $("[data-rank]"),
  distance: $("[data-distance]"),
  samples: $("[data-samples]"),
  label: $("[data-label]"),
  message: $("[data-message]"),
  problem: $("[data-problem]"),
  reviewed: $("[data-reviewed]"),
  remaining: $("[data-remaining]"),
  session: $("[data-session]"),
  stop: $("[data-stop]"),
  annotator: $("[data-annotator]"),
  zoom: $("[data-zoom]"),
  zoomValue: $("[data-zoom-value]"),
};

const state = {
  annotator: null,
  queue: [], // pairs not judged here yet; queue[0] is on screen when pos === history.length
  history: [], // {pair, label, judgement: Promise<Judgement>, failed} in the order judged here
  pos: 0,
  undo: [], // {entry, created, promise, previous: {label, judgement}}
  judged: new Set(), // pair ids judged here: never queued again by a refill
  skipped: new Set(), // pair ids passed over with →: kept at the back of the queue
  exhausted: false, // the server has no pair for this annotator
  stopped: false, // the stopping rule says no more labels are needed
  zoom: null, // null: fit the window
  session: 0,
  candidates: null,
};

// ---- images: decoded once, then moved into place with no request ----

const decoding = new Map(); // url -> Promise<HTMLImageElement>
const decoded = new Map(); // url -> HTMLImageElement, ready to show

function image(url) {
  let promise = decoding.get(url);
  if (!promise) {
    const img = new Image();
    img.src = url;
    img.draggable = false;
    promise = img.decode().then(() => {
      decoded.set(url, img);
      return img;
    });
    promise.catch(() => decoding.delete(url)); // try again on the next prefetch
    decoding.set(url, promise);
  }
  return promise;
}

function prefetch() {
  const wanted = state.queue.slice(0, LOOKAHEAD + 1);
  const keep = new Set();
  for (const pair of [...wanted, ...state.history.slice(-10).map((e) => e.pair)]) {
    for (const url of pair.image_urls) keep.add(url);
  }
  Promise.all(wanted.map((pair) => Promise.all(pair.image_urls.map(image)).catch(() => null))).then(countReady);
  if (decoding.size > 200) {
    for (const url of decoding.keys()) {
      if (!keep.has(url)) {
        decoding.delete(url);
        decoded.delete(url);
      }
    }
  }
}

// How many queued pairs after the one on screen are ready to show (tests wait on it).
function countReady() {
  const ready = state.queue.slice(1, LOOKAHEAD + 1).filter((p) => p.image_urls.every((u) => decoded.has(u)));
  root.dataset.prefetched = String(ready.length);
  root.dataset.lookahead = state.queue.slice(1, LOOKAHEAD + 1).map((p) => p.id).join(",");
}

// ---- drawing ----

function current() {
  if (state.pos < state.history.length) {
    const entry = state.history[state.pos];
    return { pair: entry.pair, entry };
  }
  return state.queue.length ? { pair: state.queue[0], entry: null } : null;
}

function say(text) {
  ui.message.textContent = text;
}

function problem(text) {
  ui.problem.hidden = !text;
  ui.problem.textContent = text || "";
}

function render() {
  const c = current();
  if (!c) {
    root.dataset.state = state.exhausted ? "done" : "loading";
    delete ui.view.dataset.pairId;
    ui.slotA.replaceChildren();
    ui.slotB.replaceChildren();
    for (const node of [ui.rank, ui.distance, ui.samples]) node.textContent = "";
    ui.label.hidden = true;
    return;
  }
  root.dataset.state = c.entry ? "revisit" : "ready";
  const { pair } = c;
  ui.view.dataset.pairId = pair.id;
  ui.rank.textContent =
    pair.origin === "random"
      ? "random pair (checks what the miner missed)"
      : `rank ${count(pair.rank)}${state.candidates ? ` of ${count(state.candidates)}` : ""}`;
  ui.distance.textContent = `distance ${pair.distance.toPrecision(4)}`;
  ui.samples.textContent = `samples ${pair.i} and ${pair.j}`;
  ui.captionA.textContent = `A: sample ${pair.i}`;
  ui.captionB.textContent = `B: sample ${pair.j}`;
  ui.label.hidden = !c.entry;
  if (c.entry) {
    ui.label.textContent = c.entry.failed ? `not saved: ${c.entry.label}` : `you said ${c.entry.label}`;
    ui.label.className = `badge label-${c.entry.label}${c.entry.failed ? " failed" : ""}`;
  }
  const [urlA, urlB] = pair.image_urls;
  const a = decoded.get(urlA);
  const b = decoded.get(urlB);
  if (a && b) {
    show(a, b);
    return;
  }
  ui.view.dataset.loading = "true";
  Promise.all([image(urlA), image(urlB)])
    .then(() => {
      if (current()?.pair.id === pair.id) render();
    })
    .catch(() => imageProblem(pair));
}

// Why an image did not load: the server's problem detail (e.g. a 409 when the generator's file
// changed since the audit, so the sample cannot be drawn again as audited).
async function imageProblem(pair) {
  let why = "";
  for (const url of pair.image_urls) {
    try {
      const response = await fetch(url);
      if (response.ok) continue;
      const body = await response.json().catch(() => null);
      why = body?.detail || `${response.status} ${response.statusText}`;
    } catch (error) {
      why = `network error: ${error.message}`;
    }
    break;
  }
  if (current()?.pair.id === pair.id) problem(`The images of pair ${pair.id} did not load${why ? `: ${why}` : "."}`);
}

function show(a, b) {
  delete ui.view.dataset.loading;
  ui.slotA.replaceChildren(a);
  ui.slotB.replaceChildren(b);
  a.alt = ui.captionA.textContent;
  b.alt = ui.captionB.textContent;
  drawDiff(a, b);
  applyZoom();
}

function drawDiff(a, b) {
  const w = a.naturalWidth;
  const h = a.naturalHeight;
  const canvas = ui.diff;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(a, 0, 0);
  const pa = ctx.getImageData(0, 0, w, h).data;
  ctx.clearRect(0, 0, w, h);
  ctx.drawImage(b, 0, 0, w, h);
  const pb = ctx.getImageData(0, 0, w, h).data;
  const out = ctx.createImageData(w, h);
  let total = 0;
  for (let k = 0; k < pa.length; k += 4) {
    const v = Math.max(Math.abs(pa[k] - pb[k]), Math.abs(pa[k + 1] - pb[k + 1]), Math.abs(pa[k + 2] - pb[k + 2]));
    total += v;
    const g = Math.min(255, v * GAIN);
    out.data[k] = g;
    out.data[k + 1] = g;
    out.data[k + 2] = g;
    out.data[k + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  ui.meanDiff.textContent = `(mean ${((100 * total) / (w * h * 255)).toFixed(1)}%)`;
}

function fitScale(w, h) {
  const per = (ui.view.clientWidth - 24) / 3;
  const tall = Math.max(96, window.innerHeight - 340);
  return Math.max(1, Math.min(32, Math.floor(Math.min(per / w, tall / h))));
}

function applyZoom() {
  const img = ui.slotA.firstElementChild;
  if (!img) return;
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  const scale = state.zoom ?? fitScale(w, h);
  for (const node of [ui.slotA.firstElementChild, ui.slotB.firstElementChild, ui.diff]) {
    if (!node) continue;
    node.style.width = `${w * scale}px`;
    node.style.height = `${h * scale}px`;
  }
  ui.zoom.value = String(scale);
  ui.zoomValue.textContent = String(scale);
  ui.view.dataset.zoom = String(scale);
}

function zoomBy(step) {
  const now = Number(ui.zoom.value) || 1;
  state.zoom = Math.max(1, Math.min(32, now + step));
  applyZoom();
}

// ---- talking to the server ----

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function postJudgement(pairId, label, key) {
  const init = {
    method: "POST",
    json: { label, annotator: state.annotator },
    headers: { "Idempotency-Key": key },
  };
  for (let attempt = 1, delay = 250; ; attempt++, delay *= 2) {
    try {
      return await api(`/api/pairs/${pairId}/judgements`, init);
    } catch (error) {
      const retry = !(error instanceof ApiError) || error.status >= 500 || [408, 429].includes(error.status);
      if (!retry || attempt >= 5) throw error;
      await sleep(delay);
    }
  }
}

let counterTimer = null;

function refreshCounter() {
  clearTimeout(counterTimer);
  counterTimer = setTimeout(async () => {
    try {
      const e = await api(`/api/audits/${auditId}/estimate`);
      state.candidates = e.candidate_pairs;
      ui.reviewed.textContent = count(e.labelled_pairs);
      const done = e.stop.reached || e.stop.labels_done;
      ui.remaining.textContent = count(done ? 0 : e.stop.labels_to_go);
      const neff = e.n_eff === null ? `N_eff ≥ ${support(e.n_eff_low)}` : `N_eff ≈ ${support(e.n_eff)}`;
      ui.stop.classList.toggle("reached", e.stop.reached);
      ui.stop.dataset.reached = String(e.stop.reached);
      const more = e.stop.samples_to_go ? `, about ${count(e.stop.samples_to_go)} more samples` : "";
      const miner = e.stop.limited_by === "miner"
        ? " Limited by the miner: the duplicates it missed leave the interval wide at any pool size; mine with more neighbours per sample."
        : "";
      // The audit's own target (set on its page, or with PATCH /api/audits/{id}).
      const aim = `±${+(e.stop.target_relative_half_width * 100).toPrecision(3)}%`;
      ui.stop.dataset.target = String(e.stop.target_relative_half_width);
      ui.stop.textContent = (e.stop.reached
        ? `Stopping rule reached for ${aim}: no more labels needed (${neff}).`
        : e.stop.labels_done
          ? `Stopping rule, aiming for ${aim}: more labels would barely help${miner ? "" : `; extend the pool${more}`} (${neff}).`
          : `Stopping rule, aiming for ${aim}: about ${labels(e.stop.labels_to_go)} to go${more} (${neff}).`) + miner;
      const c = current();
      if (c && c.pair.origin !== "random") {
        ui.rank.textContent = `rank ${count(c.pair.rank)} of ${count(e.candidate_pairs)}`;
      }
    } catch {
      // The counter catches up on the next judgement.
    }
  }, 120);
}

function changed() {
  channel.postMessage({ audit: auditId });
  refreshCounter();
}

let refilling = null;
let refillAgain = false;

// Top up the lookahead from the server's review queue (GET next-pairs): the pairs the review
// design wants this annotator to judge, in its order, each leased to them for a minute. The pair
// on screen stays; pairs skipped with → wait at the back.
async function refill() {
  if (refilling) {
    refillAgain = true;
    return;
  }
  refilling = (async () => {
    const limit = Math.min(50, LOOKAHEAD + 1 + state.skipped.size);
    const who = encodeURIComponent(state.annotator);
    const body = await api(`/api/audits/${auditId}/next-pairs?annotator=${who}&limit=${limit}`);
    const onScreen = state.pos === state.history.length ? state.queue[0] : undefined;
    const servedIds = new Set(body.items.map((p) => p.id));
    const waiting = (p) => !state.skipped.has(p.id) && p.id !== onScreen?.id;
    // Pairs already queued keep their place (the lookahead the annotator is about to see);
    // those the server no longer hands out (judged by someone else) drop out; new ones follow.
    const kept = state.queue.filter((p) => waiting(p) && servedIds.has(p.id));
    const keptIds = new Set(kept.map((p) => p.id));
    const fresh = body.items.filter((p) => waiting(p) && !state.judged.has(p.id) && !keptIds.has(p.id));
    const skipped = state.queue.filter((p) => state.skipped.has(p.id) && p.id !== onScreen?.id);
    state.queue = [...(onScreen ? [onScreen] : []), ...kept, ...fresh, ...skipped];
    state.stopped = body.stop;
    state.exhausted = state.queue.length === 0;
  })();
  try {
    await refilling;
  } catch (error) {
    problem(`Could not load the next pairs: ${error.message}`);
  } finally {
    refilling = null;
  }
  render();
  prefetch();
  if (state.exhausted || (state.queue.length && state.queue.every((p) => state.skipped.has(p.id)))) {
    waitForPairs();
  }
  if (refillAgain) {
    refillAgain = false;
    refill();
  }
}

let waiting = null;

// No pair for now: if the audit is still mining, look again as pairs arrive.
async function waitForPairs() {
  if (waiting) return;
  const audit = await api(`/api/audits/${auditId}`).catch(() => null);
  if (audit && ACTIVE.has(audit.status)) {
    say("The audit is still mining candidate pairs: they appear here as they arrive.");
    waiting = setTimeout(() => {
      waiting = null;
      refill();
    }, 2000);
    return;
  }
  say(state.skipped.size ? "Only pairs you skipped are left: use → to go through them." : await endOfQueue(audit));
  refreshCounter();
  if (!state.skipped.size) {
    hintSecondLook();
    leadOnThroughSweep();
  }
}

// Why the queue ended. The server stops handing out pairs when the rule is met, and also when
// more labels would barely narrow the interval although it is still wider than the target (the
// pool is too small for it): that is no reason to call the audit finished.
async function endOfQueue(audit) {
  const ended = audit && audit.status !== "done"
    ? `This audit ${audit.status === "failed" ? `failed (${audit.error || "no reason given"})` : "was cancelled"}: its ${count(audit.progress.samples_done)} samples so far can be judged, and its estimate is of them. `
    : "";
  if (!state.stopped) {
    return `${ended}Nothing left to review for you: every pair the design wants is labelled or with someone else.`;
  }
  const e = await api(`/api/audits/${auditId}/estimate`).catch(() => null);
  if (!e || e.stop.reached) return `${ended}Enough labels: the stopping rule is met (see the estimate).`;
  const aim = `±${+(e.stop.target_relative_half_width * 100).toPrecision(3)}%`;
  if (e.stop.limited_by === "miner") {
    return `${ended}No more labels needed here, but the interval is still wider than ${aim}: the duplicates the miner missed keep it wide; audit again with more neighbours per sample.`;
  }
  const more = e.stop.samples_to_go ? ` by about ${count(e.stop.samples_to_go)} samples` : "";
  return `${ended}No more labels needed for this pool, but the interval is still wider than ${aim}: more labels would barely narrow it. Extend the pool${more} on the audit page to reach the target.`;
}

// While the audit mines, its pairs and counters move without a judgement here: follow its event
// stream until the job ends (then the counter and the queue catch up once more).
function followMining() {
  if (!ACTIVE.has(root.dataset.auditStatus)) return;
  const source = new EventSource(`/api/audits/${auditId}/events`);
  let last = 0;
  const end = () => {
    source.close();
    refreshCounter();
    refill();
  };
  source.addEventListener("progress", (event) => {
    const p = JSON.parse(event.data);
    if (p.status && !ACTIVE.has(p.status)) return end();
    if (Date.now() - last > 3000) {
      last = Date.now(); // an estimate per chunk would cost the server a second each at 10^6
      refreshCounter();
    }
  });
  source.addEventListener("status", (event) => {
    if (!ACTIVE.has(JSON.parse(event.data).status)) end();
  });
}

// Reached from a sweep's page (?sweep=ID): at the end of this queue, the sweep's next audit
// that needs labels, so that a sweep's audits are reviewed one after another.
async function leadOnThroughSweep() {
  const sweepId = new URLSearchParams(window.location.search).get("sweep");
  const box = document.querySelector("[data-sweep-next]");
  if (!sweepId || !/^\d+$/.test(sweepId)) return;
  let support;
  try {
    support = await api(`/api/sweeps/${sweepId}/support`);
  } catch {
    return; // a convenience: the sweep's page says the same
  }
  const next = support.next_review;
  const sweepLink = Object.assign(document.createElement("a"), { href: `/sweeps/${sweepId}`, textContent: `sweep #${sweepId}` });
  if (next && next.audit_id !== auditId) {
    const link = Object.assign(document.createElement("a"), {
      href: `/audits/${next.audit_id}/review?sweep=${sweepId}`,
      textContent: `review audit #${next.audit_id}`,
    });
    link.dataset.nextAudit = next.audit_id;
    box.replaceChildren(`Next in `, sweepLink, `: `, link, ` (run ${next.run_id}, about ${labels(next.labels_to_go)} to go).`);
  } else if (!next) {
    box.replaceChildren(`Every audit of `, sweepLink, ` has met its stopping rule: its support figure is as good as these labels make it.`);
  } else {
    return;
  }
  box.hidden = false;
}

// At the end of the queue: the judgements whose slip would move N_eff most, if any, are worth
// a blind second look (the interval assumes every label right).
async function hintSecondLook() {
  const hint = document.querySelector("[data-second-look-hint]");
  try {
    // Ten at most: each costs a few whole estimates (seconds on a pool of 10^6).
    const body = await api(`/api/audits/${auditId}/second-look?limit=10`);
    const fresh = body.items.filter((item) => item.looks < 2).length;
    hint.querySelector("[data-second-look-count]").textContent =
      fresh === 1 ? "1 judgement is" : `${fresh}${body.items.length === 10 ? " or more" : ""} judgements are`;
    hint.hidden = fresh === 0;
  } catch {
    hint.hidden = true; // a hint, not a requirement: the estimate stands without it
  }
}

// ---- actions ----

function judge(label) {
  const c = current();
  if (!c) return;
  problem(null);
  const promise = postJudgement(c.pair.id, label, uuid());
  let entry;
  if (c.entry) {
    entry = c.entry;
    state.undo.push({ entry, created: false, promise, previous: { label: entry.label, judgement: entry.judgement } });
    entry.label = label;
    entry.judgement = promise;
    state.pos += 1;
  } else {
    entry = { pair: c.pair, label, judgement: promise, failed: null };
    state.queue.shift();
    state.history.push(entry);
    state.judged.add(c.pair.id);
    state.skipped.delete(c.pair.id);
    state.undo.push({ entry, created: true, promise, previous: null });
    state.pos = state.history.length;
    state.session += 1;
  }
  ui.session.textContent = String(state.session);
  say(`Pair ${c.pair.id}: ${label}.`);
  render();
  promise.then(
    () => {
      entry.failed = null;
      changed();
      refill();
    },
    (error) => {
      entry.failed = error.message;
      problem(`Pair ${c.pair.id} was not saved (${error.message}); press a label key on it to try again.`);
      render();
    },
  );
  countReady();
}

async function undo() {
  const action = state.undo.pop();
  if (!action) {
    say("Nothing to undo.");
    return;
  }
  const { entry } = action;
  if (action.created) {
    state.history.splice(state.history.indexOf(entry), 1);
    state.judged.delete(entry.pair.id);
    state.queue.unshift(entry.pair);
    state.pos = state.history.length;
    state.session -= 1;
    ui.session.textContent = String(state.session);
  } else {
    entry.label = action.previous.label;
    entry.judgement = action.previous.judgement;
    state.pos = state.history.indexOf(entry);
  }
  say(`Undone: pair ${entry.pair.id}.`);
  render();
  let judgement;
  try {
    judgement = await action.promise;
  } catch {
    return; // it never reached the server: nothing to delete there
  }
  try {
    await api(`/api/judgements/${judgement.id}`, { method: "DELETE" });
    changed();
  } catch (error) {
    problem(`The undo of pair ${entry.pair.id} failed: ${error.message}`);
  }
}

function back() {
  if (state.pos === 0) {
    say("This is the first pair you judged here.");
    return;
  }
  state.pos -= 1;
  render();
}

function forward() {
  if (state.pos < state.history.length) {
    state.pos += 1;
    render();
    return;
  }
  if (state.queue.length < 2) {
    say("No other pair to move to yet.");
    return;
  }
  const skipped = state.queue.shift();
  state.skipped.add(skipped.id);
  state.queue.push(skipped);
  say(`Skipped pair ${skipped.id} for now.`);
  render();
  refill();
}

const ACTIONS = {
  duplicate: () => judge("duplicate"),
  distinct: () => judge("distinct"),
  unsure: () => judge("unsure"),
  undo,
  back,
  forward,
};

const KEYS = {
  d: "duplicate",
  n: "distinct",
  u: "unsure",
  z: "undo",
  backspace: "undo",
  arrowleft: "back",
  arrowright: "forward",
};

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target.closest?.("dialog[open]") || target.matches?.("input:not([type=range]), textarea, select")) return;
  const key = event.key.toLowerCase();
  if (KEYS[key]) {
    event.preventDefault();
    ACTIONS[KEYS[key]]();
  } else if (key === "+" || key === "=") {
    zoomBy(1);
  } else if (key === "-") {
    zoomBy(-1);
  } else if (key === "0") {
    state.zoom = null;
    applyZoom();
  }
}

// ---- who is reviewing ----

function askName(force = false) {
  if (root.dataset.signedIn) {
    // Signed in with a token: the server takes the name from it.
    state.annotator = root.dataset.signedIn;
    return Promise.resolve();
  }
  const saved = localStorage.getItem(NAME_KEY);
  if (saved && NAME_RE.test(saved) && !force) {
    state.annotator = saved;
    ui.annotator.textContent = saved;
    return Promise.resolve();
  }
  const dialog = document.querySelector("[data-name-dialog]");
  const form = dialog.querySelector("[data-name-form]");
  const input = dialog.querySelector("[data-name-input]");
  const box = dialog.querySelector("[data-name-problem]");
  input.value = saved || "";
  dialog.showModal();
  return new Promise((resolve) => {
    const cancel = (event) => {
      if (!state.annotator) event.preventDefault(); // a name is needed before the first label
    };
    const submit = (event) => {
      const name = input.value.trim();
      if (!NAME_RE.test(name)) {
        event.preventDefault();
        box.hidden = false;
        box.textContent = "Use letters, digits, spaces and . @ - _ (up to 100 characters).";
        return;
      }
      box.hidden = true;
      localStorage.setItem(NAME_KEY, name);
      state.annotator = name;
      ui.annotator.textContent = name;
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", cancel);
      resolve();
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", cancel);
  });
}

// ---- start ----

async function start() {
  await askName();
  document.addEventListener("keydown", onKey);
  root.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button) ACTIONS[button.dataset.action]();
  });
  $("[data-change-name]")?.addEventListener("click", () => askName(true));
  ui.zoom.addEventListener("input", () => {
    state.zoom = Number(ui.zoom.value);
    applyZoom();
  });
  ui.zoom.addEventListener("change", () => ui.zoom.blur()); // arrows go back to the pairs
  window.addEventListener("resize", applyZoom);
  refreshCounter();
  followMining();
  await refill();
}

start();
