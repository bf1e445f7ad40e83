// Talking to the REST API: JSON in and out, RFC 9457 problem details turned into readable errors.

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
}

async function problem(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = (body && (body.detail || body.title)) || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, detail, body);
}

// fetch() that throws ApiError on a 4xx/5xx and returns parsed JSON (null for 204).
export async function api(url, options = {}) {
  const init = { ...options, headers: { accept: "application/json", ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers["content-type"] = "application/json";
    delete init.json;
  }
  const response = await fetch(url, init);
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  return response.json();
}

// A v4 UUID; crypto.randomUUID exists only in secure contexts (loopback or https).
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Counts for people, the same rule as the server's `count` filter.
export function count(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (Math.abs(value) >= 1e7) return value.toPrecision(3).replace("e+", "e");
  return Math.round(value).toLocaleString("en-US");
}

// N_eff and its bounds, the server's `support` filter: three significant digits below 100 (a
// collapsed generator's 1.00 - 1.08 must not read 1 - 1), a count above.
export function support(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (Math.abs(value) < 99.95) return value.toPrecision(3);
  return count(value);
}

const NUMBER_IN_TEXT = /[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/gi;

// One entry of a 422's `errors` in the form's words. `labels` maps a location past "body" (list
// indices as "*": "batches.*.size") to the field's label, or to {label, percent: true} for a
// fraction the form asks for in percent, {label, item: "value"} for a list typed in one field
// ("value 2", not "row 2"); an unknown location falls back to its last name.
function fieldError({ loc = [], msg = "" }, labels) {
  const path = ["body", "query", "path"].includes(loc[0]) ? loc.slice(1) : loc;
  const key = path.map((part) => (/^\d+$/.test(part) ? "*" : part)).join(".");
  const entry = typeof labels[key] === "string" ? { label: labels[key] } : labels[key] || {};
  const names = path.filter((part) => !/^\d+$/.test(part));
  const index = path.find((part) => /^\d+$/.test(part));
  const label = `${entry.label || names[names.length - 1] || ""}${index === undefined ? "" : ` (${entry.item || "row"} ${Number(index) + 1})`}`;
  let text = String(msg).replace(/^Input should/, "must").replace(/^Value error, /, "").replace(/\.$/, "");
  if (entry.percent) text = text.replace(NUMBER_IN_TEXT, (v) => `${+(Number(v) * 100).toPrecision(12)}%`);
  return label ? `${label}: ${text}` : text; // a check of the whole request says what is wrong
}

// Show a problem's detail in a form's alert box (or clear it with null). A 422 that lists the
// fields it refuses is said with the form's own labels (see fieldError), not the API's locations.
export function showProblem(box, error, labels = {}) {
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  const errors = error instanceof ApiError && Array.isArray(error.body?.errors) ? error.body.errors : [];
  if (errors.length) box.textContent = `${errors.map((e) => fieldError(e, labels)).join("; ")}.`;
  else box.textContent = error instanceof ApiError ? error.message : `Network error: ${error.message}`;
}
