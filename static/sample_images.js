// On every page: when a pool sample's image does not load, say why once, at the top of the page
// (the server's problem detail, e.g. a 409 when the generator's file changed since the audit and
// the sample cannot be drawn again as audited). A broken image alone says nothing.
const SAMPLE = /\/api\/audits\/\d+\/samples\/\d+\.png$/;
let told = false;

async function failed(img) {
  if (told || !(img instanceof HTMLImageElement) || !img.src || !SAMPLE.test(new URL(img.src).pathname)) return;
  told = true;
  let why;
  try {
    const response = await fetch(img.src);
    if (response.ok) {
      told = false; // it loads now: a passing network error
      return;
    }
    const body = await response.json().catch(() => null);
    why = body?.detail || `${response.status} ${response.statusText}`;
  } catch (error) {
    why = `network error: ${error.message}`;
  }
  const box = document.createElement("p");
  box.className = "problem";
  box.setAttribute("role", "alert");
  box.dataset.imageProblem = "";
  box.textContent = `Some sample images did not load: ${why}`;
  document.querySelector("main")?.prepend(box);
}

document.addEventListener("error", (event) => failed(event.target), true); // image errors do not bubble
// This module runs after the page is parsed: images may have failed before it listened.
for (const img of document.images) if (img.complete && img.src && img.naturalWidth === 0) failed(img);
