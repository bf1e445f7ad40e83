"""Issue 5: train from the browser, watch progress, loss curves and samples, audit in one click."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from tests.browser.conftest import screenshot, tick_value
from tests.conftest import wait_for, wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser


def test_train_then_audit_in_one_click(page: Page, api: httpx.Client) -> None:
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('select[name="dataset"]').select_option("digits")
    form.locator('select[name="architecture"]').select_option("dcgan")
    form.locator('input[name="latent_dim"]').fill("8")
    form.locator('input[name="d_width"]').fill("0.25")
    form.locator('input[name="g_width"]').fill("0.25")
    form.locator('input[name="steps"]').fill("60")
    form.locator('input[name="image_size"]').fill("16")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    run_id = int(page.url.rsplit("/", 1)[1])
    # The list of runs follows it too, and fills in its modes when it ends.
    runs = page.context.new_page()
    runs.goto("/training")
    runs.locator(f'tr[data-run="{run_id}"] [data-modes]', has_text="/ 10").wait_for(timeout=180_000)
    row = runs.locator(f'tr[data-run="{run_id}"]')
    assert row.locator("[data-status]").inner_text() == "done"
    assert row.locator("[data-done]").inner_text() == "60"
    runs.close()
    page.locator("[data-audit]:not([hidden])").wait_for(timeout=180_000)
    run = api.get(f"/api/training-runs/{run_id}").json()
    assert run["status"] == "done" and run["modes"]["n_modes"] == 10
    classifier = page.locator("[data-classifier]")
    assert classifier.inner_text().startswith("sklearn, learnt from the packaged digits (")
    assert "% right on held-out digits" in classifier.inner_text()
    assert page.locator("[data-status]").inner_text() == "done"
    lines = page.locator('[data-plot="losses"] .layer.line')
    assert lines.count() >= 2
    page.locator("[data-grid]:not([hidden])").wait_for()
    screenshot(page, "training")
    page.locator("[data-audit]").click()
    page.wait_for_url("**/audits/*")
    audit_id = int(page.url.rsplit("/", 1)[1])
    assert api.get(f"/api/audits/{audit_id}").json()["generator_id"] == run["generator_id"]

    # The same run's discriminator embeds an audit of its generator, in one click too.
    page.goto(f"/training/{run_id}")
    page.locator("[data-audit-discriminator]:not([hidden])").click()
    page.wait_for_url(f"**/audits/{audit_id + 1}")
    audit = api.get(f"/api/audits/{audit_id + 1}").json()
    assert audit["embedder"] == "discriminator"
    assert audit["embedder_options"] == {"weights": run["discriminator"]}


def test_a_double_click_starts_one_run_and_one_audit(page: Page, api: httpx.Client) -> None:
    before = len(api.get("/api/training-runs").json())
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('select[name="dataset"]').select_option("digits")
    form.locator('input[name="steps"]').fill("20")
    form.locator('button[type="submit"]').dblclick()
    page.wait_for_url("**/training/*")
    run_id = int(page.url.rsplit("/", 1)[1])
    assert len(api.get("/api/training-runs").json()) == before + 1
    page.locator("[data-audit]:not([hidden])").wait_for(timeout=120_000)
    audits = len(api.get("/api/audits").json())
    page.locator("[data-audit]").dblclick()
    page.wait_for_url("**/audits/*")
    assert len(api.get("/api/audits").json()) == audits + 1
    # The generator deleted while its run's page is open: the page says why it cannot be
    # audited (the note it wrote was hidden).
    audit_id = int(page.url.rsplit("/", 1)[1])
    run = api.get(f"/api/training-runs/{run_id}").json()
    page.goto(f"/training/{run_id}")
    page.locator("[data-audit]:not([hidden])").wait_for()
    wait_for_audit(api, audit_id)
    assert api.delete(f"/api/audits/{audit_id}").status_code == 204
    assert api.delete(f"/api/generators/{run['generator_id']}").status_code == 204
    page.locator("[data-audit]").click()
    problem = page.locator("[data-audit-problem]:not([hidden])")
    problem.wait_for()
    assert "does not exist" in problem.inner_text()
    assert page.locator("[data-audit]").is_enabled()


def test_bad_training_request_shows_the_problem(page: Page) -> None:
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('input[name="steps"]').fill("2000000")  # the API allows at most 10^6
    form.locator('button[type="submit"]').click()
    problem = page.locator("#train-problem:not([hidden])")
    problem.wait_for()
    assert problem.inner_text() == "steps: must be less than or equal to 1000000."
    # A refused field is named by its label, not the API's location ("d_width").
    form.locator('input[name="steps"]').fill("3")
    form.locator('input[name="d_width"]').fill("20")
    form.locator('button[type="submit"]').click()
    page.wait_for_function(
        "document.querySelector('#train-problem').textContent.includes('discriminator width')"
    )
    assert problem.inner_text() == "discriminator width: must be less than or equal to 16."


def test_a_blank_knob_takes_the_servers_default(page: Page, api: httpx.Client) -> None:
    """A cleared number field is left out of the request (it was sent as 0 and refused)."""
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('input[name="steps"]').fill("3")
    form.locator(".knobs summary").click()
    form.locator('input[name="batch_size"]').fill("")
    form.locator('input[name="beta1"]').fill("")
    form.locator('input[name="beta2"]').fill("0.9")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    config = api.get(f"/api/training-runs/{page.url.rsplit('/', 1)[1]}").json()["config"]
    assert (config["batch_size"], config["betas"]) == (64, [0.5, 0.9])


def test_blank_loop_fields_show_and_take_the_losss_paper(page: Page, api: httpx.Client) -> None:
    """The blank lr, betas and D steps say what they will train with for the chosen loss, and
    a half-given beta pair takes the other from it (WGAN-GP's beta1 is 0, not DCGAN's 0.5)."""
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator(".knobs summary").click()
    placeholders = ("lr", "beta1", "beta2", "d_steps")

    def shown(form: Locator) -> list[str | None]:
        return [
            form.locator(f'input[name="{n}"]').get_attribute("placeholder") for n in placeholders
        ]

    assert shown(form) == ["0.0002", "0.5", "0.999", "1"]
    form.locator('select[name="loss"]').select_option("wgan_gp")
    assert shown(form) == ["0.0001", "0", "0.9", "5"]
    form.locator('input[name="steps"]').fill("2")
    form.locator('input[name="beta2"]').fill("0.95")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    config = api.get(f"/api/training-runs/{page.url.rsplit('/', 1)[1]}").json()["config"]
    assert (config["lr"], config["betas"], config["d_steps"]) == (1e-4, [0.0, 0.95], 5)
    # A grid: what its checked losses share, else "each loss's own"; half a pair they do not
    # share is refused on the form, naming the field.
    page.goto("/training")
    page.locator("#sweep-details > summary").click()
    grid = page.locator("#sweep-form")
    grid.locator(".knobs summary").click()
    assert shown(grid) == ["0.0002", "0.5", "0.999", "1"]  # sgan_nonsaturating and rasgan
    grid.locator('input[name="losses"][value="wgan_gp"]').check()
    assert shown(grid) == ["each loss's own"] * 4
    grid.locator('input[name="beta1"]').fill("0.5")
    grid.locator('button[type="submit"]').click()
    problem = page.locator("#sweep-problem:not([hidden])")
    problem.wait_for()
    assert problem.inner_text().startswith("Adam β1, β2: give both or neither")
    # With no loss checked the missing losses are what the form says, not the papers' betas.
    for box in grid.locator('input[name="losses"]').all():
        box.uncheck()
    grid.locator('button[type="submit"]').click()
    page.wait_for_function(
        "!document.querySelector('#sweep-problem').textContent.startsWith('Adam')"
    )
    assert "losses" in problem.inner_text(), problem.inner_text()


def test_a_refused_sweep_names_the_field_as_labelled(page: Page) -> None:
    page.goto("/training")
    page.locator("#sweep-details > summary").click()
    form = page.locator("#sweep-form")
    form.locator('input[name="d_widths"]').fill("0.5, 20")
    form.locator('button[type="submit"]').click()
    problem = page.locator("#sweep-problem:not([hidden])")
    problem.wait_for()
    assert problem.inner_text() == (
        "discriminator widths (value 2): must be less than or equal to 16."
    )


def test_the_form_sets_the_optimiser_and_network_sizes(page: Page, api: httpx.Client) -> None:
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('select[name="loss"]').select_option("wgan_gp")
    form.locator('input[name="steps"]').fill("3")
    form.locator(".knobs summary").click()
    for name, value in (
        ("lr", "0.0001"),
        ("beta1", "0"),
        ("beta2", "0.9"),
        ("d_steps", "5"),
        ("gp_weight", "0.1"),
        ("hidden", "24"),
        ("depth", "3"),
    ):
        form.locator(f'input[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    config = api.get(f"/api/training-runs/{page.url.rsplit('/', 1)[1]}").json()["config"]
    assert (config["lr"], config["betas"], config["d_steps"], config["batch_size"]) == (
        1e-4,
        [0.0, 0.9],
        5,
        64,
    )
    assert config["architecture_options"] == {"hidden": 24, "depth": 3}
    assert config["gp_weight"] == 0.1
    loop = page.locator("[data-loop]").inner_text()
    assert "5 D steps per G step · gradient penalty λ 0.1 · hidden 24 · depth 3" in loop
    # A size the architecture does not take: the server's problem, shown on the form.
    page.goto("/training")
    form.locator('select[name="architecture"]').select_option("mlp")
    form.locator(".knobs summary").click()
    form.locator('input[name="base_width"]').fill("16")
    form.locator('button[type="submit"]').click()
    problem = page.locator("#train-problem:not([hidden])")
    problem.wait_for()
    assert "base_width" in problem.inner_text()


def test_a_running_run_follows_its_stream_without_polling(page: Page, api: httpx.Client) -> None:
    body = {"dataset": "ring8", "loss": "rasgan", "steps": 10**6, "log_every": 20}
    run = api.post("/api/training-runs", json={**body, "sample_every": 200}).json()
    prefix = f"/api/training-runs/{run['id']}"
    fetched: list[str] = []

    def record(request: Any) -> None:
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        if f"/{path}".startswith(prefix) and not path.endswith(("/events", ".png")):
            fetched.append(path)

    page.on("request", record)
    page.goto(f"/training/{run['id']}")
    step = lambda: int(page.inner_text("[data-step]"))  # noqa: E731
    points = lambda: page.locator('[data-plot="losses"] .layer.line path').evaluate_all(  # noqa: E731
        "paths => paths.map(p => p.getAttribute('d').split('L').length)"
    )
    page.wait_for_function("Number(document.querySelector('[data-step]').textContent) > 400")
    page.locator("[data-grid]:not([hidden])").wait_for()
    grid, before, drawn = page.inner_text("[data-grid-step]"), step(), points()
    fetched.clear()
    page.wait_for_timeout(
        4000
    )  # the old page fetched the run, its losses and its grids every second
    assert fetched == []
    assert step() > before and min(points()) > max(drawn)
    assert page.inner_text("[data-grid-step]") != grid

    # The home page shows the run's job advancing on its own stream too.
    home = page.context.new_page()
    home.goto("/")
    row = home.locator(f'tr[data-job-run="{run["id"]}"]')
    shown = lambda: int(row.locator("progress").get_attribute("value") or 0)  # noqa: E731
    first = shown()
    home.wait_for_function(
        f"document.querySelector('tr[data-job-run=\"{run['id']}\"] progress').value > {first}"
    )

    listed = page.context.new_page()
    listed.goto("/training")
    bar = f'tr[data-run="{run["id"]}"] progress'
    start = listed.locator(bar).get_attribute("value")
    listed.wait_for_function(f"document.querySelector('{bar}').value > {start}")

    page.locator("[data-cancel-run]").click()
    page.locator("[data-status]", has_text="cancelled").wait_for()
    assert page.locator("[data-cancel-run]").is_hidden()
    row.locator("[data-status]", has_text="cancelled").wait_for()
    listed.locator(f'tr[data-run="{run["id"]}"] [data-status]', has_text="cancelled").wait_for()
    listed.close()
    ended = api.get(f"{prefix}").json()
    page.wait_for_function(
        f"Number(document.querySelector('[data-step]').textContent) === {ended['progress']['step']}"
    )
    assert page.locator("[data-audit]").is_hidden()
    home.close()


def test_a_grid_from_the_form_to_compared_audits(page: Page, api: httpx.Client) -> None:
    page.goto("/training")
    page.locator("#sweep-details > summary").click()
    form = page.locator("#sweep-form")
    form.locator('input[name="losses"][value="rasgan"]').uncheck()
    assert form.locator('input[name="losses"]:checked').evaluate_all(
        "boxes => boxes.map(b => b.value)"
    ) == ["sgan_nonsaturating"]
    form.locator('select[name="dataset"]').select_option("digits")
    form.locator('select[name="architecture"]').select_option("dcgan")
    form.locator('input[name="latent_dims"]').fill("8")
    form.locator('input[name="d_widths"]').fill("0.25, 0.5")
    form.locator('input[name="seeds"]').fill("0")
    form.locator('input[name="g_width"]').fill("0.25")
    form.locator('input[name="steps"]').fill("40")
    form.locator('input[name="image_size"]').fill("16")
    form.locator(".knobs summary").click()
    form.locator('input[name="batch_size"]').fill("32")
    form.locator('input[name="base_width"]').fill("16")
    form.locator('select[name="d_norm"]').select_option("layer")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/sweeps/*")
    sweep_id = int(page.url.rsplit("/", 1)[1])
    sweep = api.get(f"/api/sweeps/{sweep_id}").json()
    assert [r["config"]["d_width"] for r in sweep["runs"]] == [0.25, 0.5]
    assert all(r["config"]["batch_size"] == 32 for r in sweep["runs"])
    assert all(
        r["config"]["architecture_options"] == {"base_width": 16, "d_norm": "layer"}
        for r in sweep["runs"]
    )
    # The results table fills in as the runs end (the page follows them).
    for cell in ("sgan_nonsaturating|8|0.25", "sgan_nonsaturating|8|0.5"):
        done = page.locator(f'[data-cell="{cell}"] [data-done]', has_text="1 / 1")
        done.wait_for(timeout=180_000)
    sweep = api.get(f"/api/sweeps/{sweep_id}").json()
    captured = [int(r["modes"]["modes_captured"]) for r in sweep["runs"]]
    cells = page.locator("[data-cell] [data-captured]").all_inner_texts()
    assert [text.split(" ")[0] for text in cells] == [f"{c:.1f}" for c in captured]
    grids = page.locator("[data-final-grid]")
    assert grids.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)") == [
        True,
        True,
    ]
    screenshot(page, "sweep")

    card = page.locator("[data-sweep-audits]")
    card.locator('input[name="n"]').fill("80")
    card.locator('select[name="embedder"]').select_option("discriminator")
    card.locator("button[type=submit]").click()
    link = card.locator("[data-compare] a")
    link.wait_for()
    audits = api.get(f"/api/sweeps/{sweep_id}").json()["audits"]
    assert (
        len(audits) == 2 and link.get_attribute("href") == f"/compare?ids={audits[0]},{audits[1]}"
    )
    for audit_id in audits:
        audit = api.get(f"/api/audits/{audit_id}").json()
        assert audit["embedder"] == "discriminator" and audit["n"] == 80
    link.click()
    page.wait_for_url("**/compare?ids=*")
    names = page.locator("table.compare td:nth-child(2)").all_inner_texts()
    assert ["D x0.25" in names[0], "D x0.5" in names[1]] == [True, True]
    page.goto("/training")
    row = page.locator(f'tr[data-sweep="{sweep_id}"]')
    assert row.locator("td").nth(4).inner_text() == "2 / 2"
    assert row.locator("td a").last.get_attribute("href") == f"/compare?ids={audits[0]},{audits[1]}"
    screenshot(page, "training-list")


def _label_everything(api: httpx.Client, audit_id: int, classes: int) -> None:
    """Judge every pair, candidate and random, as a reviewer who sees `classes` kinds of
    sample (sample i is of kind i % classes): a consistent partition, so the closure holds."""
    for origin in ("candidate", "random"):
        while True:
            page = api.get(
                f"/api/audits/{audit_id}/pairs",
                params={"origin": origin, "label": "unlabelled", "limit": 500},
            ).json()
            for pair in page["items"]:
                same = pair["i"] % classes == pair["j"] % classes
                response = api.post(
                    f"/api/pairs/{pair['id']}/judgements",
                    json={"label": "duplicate" if same else "distinct", "annotator": "ada"},
                )
                assert response.status_code == 201, response.text
            if not page["items"]:
                break


def test_a_runs_own_upper_end_does_not_stretch_the_support_figure(
    page: Page, api: httpx.Client
) -> None:
    """A run's upper end is not drawn (its point is); one near 1e10 (a fresh review) stretched
    the y-axis until the figure was one line. The figure read as the API gives it, routed."""
    body = {
        "dataset": "digits",
        "architecture": "dcgan",
        "losses": ["rsgan"],
        "latent_dims": [4],
        "d_widths": [0.5, 1.0],
        "g_width": 0.25,
        "batch_size": 8,
        "steps": 2,
        "dataset_options": {"image_size": 8},
    }
    sweep_id = api.post("/api/sweeps", json=body).json()["id"]
    support = api.get(f"/api/sweeps/{sweep_id}/support").json()
    assert [r["d_width"] for r in support["runs"]] == [0.5, 1.0]
    for run, (n_eff, high) in zip(support["runs"], ((200.0, 1e10), (400.0, 900.0)), strict=True):
        run |= {"used": True, "audit_id": 1, "n": 300, "n_eff": n_eff, "n_eff_low": n_eff / 2}
        run |= {"n_eff_high": high, "waiting_for": None, "reason": None, "stop_reached": True}
    support["cells"] = [
        {
            "loss": "rsgan",
            "latent_dim": r["latent_dim"],
            "d_width": r["d_width"],
            "runs": 1,
            "empty_pools": 0,
            "n_eff": r["n_eff"],
            "n_eff_low": r["n_eff_low"],
            "n_eff_high": 2 * r["n_eff"],
        }
        for r in support["runs"]
    ]
    page.route(f"**/api/sweeps/{sweep_id}/support", lambda route: route.fulfill(json=support))
    page.goto(f"/sweeps/{sweep_id}")
    figure = page.locator('[data-plot="support"]')
    figure.locator('[data-layer^="cells"] .point').first.wait_for()
    ticks = figure.locator(".axis-left text").all_text_contents()
    assert ticks and max(tick_value(t) for t in ticks) <= 1e4


def test_a_sweeps_support_figure_fills_in_as_its_audits_are_reviewed(
    page: Page, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    body = {
        "dataset": "digits",
        "architecture": "dcgan",
        "losses": ["sgan_nonsaturating"],
        "latent_dims": [8],
        "d_widths": [0.25, 0.5],
        "seeds": [0, 1],
        "g_width": 0.25,
        "batch_size": 16,
        "steps": 6,
        "dataset_options": {"image_size": 16},
    }
    sweep_id = api.post("/api/sweeps", json=body).json()["id"]
    sweep: dict[str, Any] = {}

    def finished() -> bool:
        sweep.update(api.get(f"/api/sweeps/{sweep_id}").json())
        return all(r["status"] == "done" for r in sweep["runs"])

    wait_for(finished, 180, what="the sweep")
    page.goto(f"/sweeps/{sweep_id}")
    card = page.locator("[data-support]")
    # The list fills in once the page has read the support figure: wait for it.
    expect(card.locator("[data-support-left] li")).to_have_count(4)  # no audit yet, each says so
    assert card.locator("[data-support-empty]").is_visible()

    audits = page.locator("[data-sweep-audits]")
    audits.locator('input[name="n"]').fill("30")
    audits.locator("button[type=submit]").click()
    audits.locator("[data-compare] a").wait_for()
    ids = api.get(f"/api/sweeps/{sweep_id}").json()["audits"]
    # The figure takes each audit in as its pool is finished: then each run waits for review.
    for audit_id in ids:
        reason = card.locator("[data-support-left] li", has_text=f"audit {audit_id})")
        reason.filter(has_text="keep labelling").wait_for(state="attached", timeout=120_000)
    # The audits' embedder is offered as a filter once they are finished.
    options = card.locator("[data-support-embedder] option")
    assert options.evaluate_all("os => os.map(o => o.value)") == ["", "pixels"]
    # Review them one after another: the figure names the audit to label next, and its review
    # page leads on to the next one when its queue ends.
    first = card.locator("[data-support-next] a")
    first.wait_for()
    assert first.get_attribute("href") == f"/audits/{ids[0]}/review?sweep={sweep_id}"
    classes = {r["generator_id"]: 4 if r["config"]["d_width"] == 0.25 else 8 for r in sweep["runs"]}
    generators = {a: api.get(f"/api/audits/{a}").json()["generator_id"] for a in ids}
    _label_everything(api, ids[0], classes[generators[ids[0]]])
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    first.click()
    page.wait_for_url(f"**/audits/{ids[0]}/review?sweep={sweep_id}")
    onward = page.locator("[data-sweep-next] a[data-next-audit]")
    onward.wait_for()
    assert onward.get_attribute("href") == f"/audits/{ids[1]}/review?sweep={sweep_id}"
    screenshot(page, "review-sweep-next")
    for audit_id in ids[1:-1]:
        _label_everything(api, audit_id, classes[generators[audit_id]])
    _label_everything(api, ids[-1], classes=10_000)  # nothing alike: no duplicate in its pool
    page.goto(f"/audits/{ids[-1]}/review?sweep={sweep_id}")
    page.locator("[data-sweep-next]", has_text="has met its stopping rule").wait_for()
    page.goto(f"/sweeps/{sweep_id}")
    card.locator("[data-support-refresh]").click()
    card.locator("[data-support-trends] li").wait_for()

    support = api.get(f"/api/sweeps/{sweep_id}/support").json()
    # The pool with no duplicate is in the figure as a count of 0 (a lower bound on its N_eff).
    assert [r["used"] for r in support["runs"]] == [True, True, True, True]
    assert support["runs"][-1]["waiting_for"] == "samples"
    assert support["trends"][0]["empty_pools"] == 1
    # Labels that call far pairs duplicates break the estimate's assumptions: the audits say
    # so, and the figure's notes name them.
    warned = [r["audit_id"] for r in support["runs"] if r["used"] and r["warnings"]]
    assert warned
    notes = card.locator("[data-support-notes]").inner_text()
    assert all(f"#{audit_id}" in notes for audit_id in warned)
    (trend,) = support["trends"]
    text = card.locator("[data-support-trends] li").inner_text()
    assert f"width^{trend['exponent']:.2f}" in text and f"{trend['exponent_low']:.2f}" in text
    rows = card.locator("tbody[data-support-cells] tr")
    assert rows.count() == 2
    for k, cell in enumerate(support["cells"]):
        assert rows.nth(k).get_attribute("data-cell") == f"sgan_nonsaturating|8|{cell['d_width']}"
    plot = card.locator('[data-plot="support"]')
    assert plot.locator('[data-layer^="runs"] .point').count() == 3
    bound = plot.locator('[data-layer^="bounds"] .point')
    assert bound.count() == 1 and bound.locator(".whisker").count() == 1
    left = card.locator("[data-support-left]")
    # Runs whose review ended short of the target are listed with the samples they need.
    wide = [r for r in support["runs"] if r["used"] and not r["waiting_for"] and r["reason"]]
    summary = "1 in it as a lower bound only"
    if wide:
        summary += f", {len(wide)} wider than the target until a larger pool"
    assert left.locator("summary").inner_text() == summary
    items = left.locator("li")
    assert "no duplicate in its pool" in (items.nth(0).text_content() or "")
    for k, row in enumerate(wide, start=1):
        assert row["reason"] in (items.nth(k).text_content() or "")
        assert "extend its pool by about" in row["reason"] or "no pool size" in row["reason"]
    assert plot.locator('[data-layer^="cells"] .point .whisker').count() == 2
    assert plot.locator('[data-layer^="trend"] path').count() == 1
    screenshot(page, "sweep-support")

    # The pool with no duplicate: one click doubles it, and the figure follows the extension.
    card.locator("[data-support-extend] button").click()
    card.locator("[data-support-left] li", has_text="keep labelling").wait_for(
        state="attached", timeout=120_000
    )
    assert api.get(f"/api/audits/{ids[-1]}").json()["n"] == 60
    assert card.locator("[data-support-extend]").is_hidden()


def test_the_forms_train_on_a_file_under_the_datasets_directory(
    page: Page, api: httpx.Client, serve_home: Path
) -> None:
    datasets = serve_home / "data" / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(24, 16, 16, 1), dtype=np.uint8)
    np.savez(datasets / "tiny.npz", images=pixels)
    page.goto("/training")
    form = page.locator("#train-form")
    dataset, field = form.locator('select[name="dataset"]'), form.locator("[data-path-field]")
    path = field.locator("input")
    assert field.is_hidden()  # the first dataset (a toy) reads no file
    dataset.select_option("mnist")
    assert field.is_visible() and not path.evaluate("input => input.required")
    dataset.select_option("npz")
    assert field.is_visible() and path.evaluate("input => input.required")
    assert page.locator('#dataset-files option[value="tiny.npz"]').count() == 1
    sweep_field = page.locator("#sweep-form [data-path-field]")
    page.locator("#sweep-details > summary").click()
    page.locator('#sweep-form select[name="dataset"]').select_option("stacked_mnist")
    assert sweep_field.is_visible()
    path.fill("tiny.npz")
    form.locator('select[name="architecture"]').select_option("dcgan")
    form.locator('input[name="latent_dim"]').fill("8")
    form.locator('input[name="d_width"]').fill("0.25")
    form.locator('input[name="g_width"]').fill("0.25")
    form.locator('input[name="steps"]').fill("2")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    run_id = int(page.url.rsplit("/", 1)[1])
    run = api.get(f"/api/training-runs/{run_id}").json()
    assert run["config"]["dataset"] == "npz"
    assert run["config"]["dataset_options"]["path"] == "tiny.npz"  # as given, not the server's
    wait_for(
        lambda: api.get(f"/api/training-runs/{run_id}").json()["status"] == "done",
        timeout=120,
        what="the run on tiny.npz to finish",
    )
