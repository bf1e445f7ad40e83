// The second-look page: a fresh, blind answer on each listed pair, posted as a judgement; the
// standing label and what its slip would do show after the answer.
import { api, uuid } from "./api.js";

const NAME_KEY = "birthday.annotator"; // shared with the review page
// the server's rule (app/schemas.py ANNOTATOR_NAME): no space at either end
const NAME_RE = /^(?=.{1,100}$)[\w.@-]([\w .@-]*[\w.@-])?$/;
const root = document.querySelector("[data-second-look]");
const problem = root.querySelector("[data-problem]");
const nameInput = root.querySelector("[data-name-input]");
if (nameInput) nameInput.value = localStorage.getItem(NAME_KEY) || "";

function annotator() {
  if (root.dataset.signedIn) return root.dataset.signedIn;
  const name = nameInput.value.trim();
  if (!NAME_RE.test(name)) return null;
  localStorage.setItem(NAME_KEY, name);
  return name;
}

const say = (text) => {
  problem.textContent = text;
  problem.hidden = !text;
};

for (const row of root.querySelectorAll("tr[data-pair]")) {
  const key = uuid(); // one judgement per row: a retry after a lost reply must not double it
  row.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-answer]");
    if (!button) return;
    const who = annotator();
    if (!who) {
      say("Your name first (letters, digits, spaces and . @ - _): the answer is recorded under it.");
      nameInput.focus();
      return;
    }
    const label = button.dataset.answer;
    try {
      await api(`/api/pairs/${row.dataset.pair}/judgements`, {
        method: "POST",
        json: { label, annotator: who },
        headers: { "Idempotency-Key": key },
      });
    } catch (error) {
      say(`Could not record the answer: ${error.message}`);
      return;
    }
    say("");
    for (const b of row.querySelectorAll("button[data-answer]")) b.disabled = true;
    button.classList.add("chosen");
    const reveal = row.querySelector("[data-reveal]");
    const standing = reveal.querySelector("[data-standing-label]").dataset.standingLabel;
    reveal.querySelector("[data-verdict]").textContent =
      label === "unsure" ? "(you were unsure)" : label === standing ? "(you agree)" : "(you answered otherwise)";
    reveal.hidden = false;
    const looks = row.querySelector("[data-looks]");
    looks.textContent = String(Number(looks.textContent) + 1);
  });
}
