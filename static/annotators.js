// The annotators page: make a token (shown once) and revoke one, over the REST API.
import { api, count, showProblem } from "./api.js";

const form = document.getElementById("annotator-form");
const box = form.querySelector("[data-problem]");
const table = document.querySelector("[data-annotators] tbody");

function row(name, role, hasToken, judgements) {
  const tr = document.createElement("tr");
  tr.dataset.annotator = name;
  for (const text of [name, role]) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
  const judged = Object.assign(document.createElement("td"), { textContent: count(judgements), className: "num" });
  judged.dataset.judgements = "";
  tr.append(judged);
  tr.append(Object.assign(document.createElement("td"), { textContent: hasToken ? "yes" : "none" }));
  tr.lastChild.dataset.hasToken = "";
  const cell = document.createElement("td");
  if (hasToken) {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: "revoke" });
    button.className = "small secondary danger";
    button.dataset.revoke = name;
    cell.append(button);
  }
  tr.append(cell);
  return tr;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showProblem(box, null);
  const data = new FormData(form);
  try {
    const made = await api("/api/annotators", {
      method: "POST",
      json: { name: String(data.get("name")).trim(), role: data.get("role") },
    });
    const shown = form.querySelector("[data-new-token]");
    shown.querySelector("[data-token-name]").textContent = made.name;
    shown.querySelector("[data-token]").textContent = made.token;
    shown.hidden = false;
    table.querySelector("[data-empty]")?.remove();
    const old = [...table.querySelectorAll("tr[data-annotator]")].find((r) => r.dataset.annotator === made.name);
    const judged = old ? Number(old.querySelector("[data-judgements]").textContent.replace(/,/g, "")) || 0 : 0;
    const fresh = row(made.name, made.role, true, judged);
    if (old) old.replaceWith(fresh);
    else table.append(fresh);
    form.elements.name.value = "";
  } catch (error) {
    showProblem(box, error);
  }
});

table.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-revoke]");
  if (!button) return;
  const name = button.dataset.revoke;
  if (!window.confirm(`Revoke ${name}'s token? It stops working at once; their judgements stay.`)) return;
  button.disabled = true;
  try {
    await api(`/api/annotators/${encodeURIComponent(name)}/token`, { method: "DELETE" });
    button.closest("tr").querySelector("[data-has-token]").textContent = "revoked";
    button.remove();
  } catch (error) {
    showProblem(box, error);
    button.disabled = false;
  }
});
