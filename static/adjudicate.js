// The adjudication page: an admin's ruling on a split pair, posted to the REST API.
import { api } from "./api.js";

const problem = document.getElementById("adjudicate-problem");

for (const row of document.querySelectorAll("tr[data-pair]")) {
  row.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-rule]");
    if (!button) return;
    const label = button.dataset.rule;
    try {
      await api(`/api/pairs/${row.dataset.pair}/adjudication`, { method: "POST", json: { label } });
      const done = row.querySelector(".ruled");
      done.textContent = `ruled ${label}`;
      done.hidden = false;
      problem.hidden = true;
    } catch (error) {
      problem.textContent = `Could not record the ruling: ${error.message}`;
      problem.hidden = false;
    }
  });
}
