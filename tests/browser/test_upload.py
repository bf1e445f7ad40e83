"""Acceptance 2: upload a checkpoint through the form, see bad input refused with the API's own
message, then start an audit of the upload."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import TINY_DCGAN_RUN, finished_run, wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

OPTIONS = {"image_size": 16, "channels": 1, "latent_dim": 8, "g_width": 0.25, "d_width": 0.25}


def _safetensors(tmp_path: Path) -> bytes:
    from app.gan.checkpoint import save_generator
    from app.gan.registry import build_generator

    module, _ = build_generator("dcgan", OPTIONS)
    save_generator(tmp_path / "g.safetensors", module, "dcgan", OPTIONS)
    return (tmp_path / "g.safetensors").read_bytes()


def _api_detail(api: httpx.Client, content: bytes, **form: Any) -> str:
    """What the API itself says about this upload: the form must show exactly that."""
    response = api.post("/api/generators", data=form, files={"file": ("g.bin", content)})
    assert response.status_code == 422, response.text
    return str(response.json()["detail"])


def _submit(page: Page, content: bytes, name: str = "g.safetensors") -> None:
    page.set_input_files(
        "input[name=file]",
        {"name": name, "mimeType": "application/octet-stream", "buffer": content},
    )
    page.click("[data-upload-form] button[type=submit]")


def test_upload_validate_and_audit(page: Page, api: httpx.Client, tmp_path: Path) -> None:
    page.goto("/generators/new")
    problem = page.locator("[data-upload-form] [data-problem]")

    page.click("[data-upload-form] button[type=submit]")
    assert problem.inner_text() == "Give the generator a name."

    page.fill("input[name=name]", "tiny dcgan")
    page.select_option("select[name=format]", "safetensors")
    _submit(page, b"this is not a safetensors file")
    expected = _api_detail(api, b"this is not a safetensors file", name="x", format="safetensors")
    problem.filter(has_text=expected).wait_for()

    weights = _safetensors(tmp_path)
    page.select_option("select[name=architecture]", "dcgan")
    page.fill("textarea[name=options]", '{"image_size": 16,')
    _submit(page, weights)
    expected = _api_detail(
        api,
        weights,
        name="x",
        format="safetensors",
        architecture="dcgan",
        options='{"image_size": 16,',
    )
    assert expected.startswith("options must be a JSON object")
    problem.filter(has_text=expected).wait_for()
    screenshot(page, "upload-refused")

    page.select_option("select[name=format]", "samples")  # archives have no architecture
    assert not page.is_visible("select[name=architecture]")
    page.select_option("select[name=format]", "safetensors")
    page.fill("textarea[name=options]", json.dumps(OPTIONS))
    page.fill("input[name=latent_dim]", "8")
    with page.expect_response("**/api/generators") as response_info:
        _submit(page, weights)
    generator = response_info.value.json()
    assert response_info.value.status == 201
    uploaded = page.locator("[data-uploaded]")
    uploaded.wait_for()
    assert not problem.is_visible()
    summary = page.inner_text("[data-generator-summary]")
    assert "dcgan" in summary and "1×16×16" in summary and "latent size 8" in summary
    assert api.get(f"/api/generators/{generator['id']}").json()["name"] == "tiny dcgan"
    screenshot(page, "upload-ready")

    page.fill("[data-uploaded] input[name=n]", "1")
    page.click("[data-uploaded] button[type=submit]")
    page.locator("[data-uploaded] [data-problem]").filter(
        has_text="greater than or equal to 2"
    ).wait_for()
    page.fill("[data-uploaded] input[name=n]", "200")
    page.fill("[data-uploaded] input[name=embedder_options]", '{"weights": ')
    page.click("[data-uploaded] button[type=submit]")
    page.locator("[data-uploaded] [data-problem]").filter(
        has_text="Embedder options must be JSON"
    ).wait_for()
    page.select_option("[data-uploaded] select[name=embedder]", "discriminator")
    page.fill("[data-uploaded] input[name=embedder_options]", "{}")
    page.click("[data-uploaded] button[type=submit]")
    page.locator("[data-uploaded] [data-problem]").filter(
        has_text="option 'weights' is required for the discriminator embedder"
    ).wait_for()  # the API's own problem detail
    page.select_option("[data-uploaded] select[name=embedder]", "pixels")
    page.fill("[data-uploaded] input[name=embedder_options]", "")
    page.fill("[data-uploaded] input[name=neighbours]", "3")
    page.select_option("[data-uploaded] select[name=miner]", "exact")
    page.fill("[data-uploaded] input[name=random_pairs]", "20")
    page.click("[data-uploaded] button[type=submit]")
    page.wait_for_url(re.compile(r"/audits/\d+$"))
    audit_id = int(page.url.rsplit("/", 1)[1])
    audit = wait_for_audit(api, audit_id)
    assert audit["generator_id"] == generator["id"] and audit["n"] == 200
    assert (audit["neighbours"], audit["miner"]) == (3, "exact")
    randoms = api.get(f"/api/audits/{audit_id}/pairs", params={"origin": "random", "limit": 100})
    # 20 drawn (not the default 50); one that is also a candidate pair is dropped.
    assert 15 <= len(randoms.json()["items"]) <= 20, randoms.text
    page.locator('.audit-meta [data-status]:text-is("done")').wait_for()

    page.goto("/")
    row = page.locator(f'tr[data-generator="{generator["id"]}"]')
    assert "tiny dcgan" in row.inner_text() and "ready" in row.inner_text()


def test_upload_an_onnx_graph_through_the_form(page: Page, api: httpx.Client) -> None:
    from tests.test_onnx import generator_model

    page.goto("/generators/new")
    page.fill("input[name=name]", "my own architecture")
    page.select_option("select[name=format]", "onnx")
    with page.expect_response("**/api/generators") as response_info:
        _submit(page, generator_model().SerializeToString(), name="g.onnx")
    assert response_info.value.status == 201, response_info.value.text()
    page.locator("[data-uploaded]").wait_for()
    summary = page.inner_text("[data-generator-summary]")
    assert "onnx" in summary and "1×8×8" in summary and "latent size 4" in summary
    generator = response_info.value.json()
    assert api.get(f"/api/generators/{generator['id']}").json()["format"] == "onnx"


def test_new_audit_form_sets_the_source_and_the_miner(page: Page, api: httpx.Client) -> None:
    """A synthetic source with a continuous part and a larger k, from /audits/new; a k the
    API refuses shows the API's problem."""
    page.goto("/audits/new")
    page.check("input[name=source][value=synthetic]")
    page.fill("input[name=support]", "120")
    page.fill("input[name=continuous]", "0.3")
    page.fill("input[name=n]", "150")
    page.fill("input[name=neighbours]", "0")
    page.click("[data-audit-form] button[type=submit]")
    page.locator("[data-audit-form] [data-problem]").filter(has_text="neighbours").wait_for()
    page.fill("input[name=neighbours]", "7")
    page.fill("input[name=target_pct]", "12.5")
    page.click("[data-audit-form] button[type=submit]")
    page.wait_for_url(re.compile(r"/audits/\d+$"))
    audit = wait_for_audit(api, int(page.url.rsplit("/", 1)[1]))
    assert audit["synthetic"]["continuous"] == 0.3 and audit["synthetic"]["support"] == 120
    assert (audit["neighbours"], audit["miner"], audit["n"]) == (7, "auto", 150)
    assert audit["target"] == 0.125


def test_the_audit_form_offers_the_weights_each_embedder_can_read(
    page: Page, api: httpx.Client
) -> None:
    body = {**TINY_DCGAN_RUN, "dataset": "digits", "dataset_options": {"image_size": 16}}
    run = finished_run(api, body)
    page.goto("/audits/new")
    form = page.locator("[data-audit-form]")
    weights, model = form.locator("[data-weights-field]"), form.locator("[data-model-field]")
    assert weights.is_hidden() and model.is_hidden()  # pixels read no file
    form.locator("select[name=generator_id]").select_option(str(run["generator_id"]))
    form.locator("select[name=embedder]").select_option("discriminator")
    assert weights.is_visible() and model.is_hidden()
    offered = weights.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert offered[0] == "" and run["discriminator"] in offered  # required: chosen, not guessed
    assert weights.locator("option").first.inner_text() == "choose a checkpoint"
    form.locator("select[name=embedder]").select_option("clip")
    assert model.is_visible()
    form.locator("select[name=embedder]").select_option("digits")
    assert weights.locator("option").first.inner_text() == "default"  # optional
    form.locator("select[name=embedder]").select_option("discriminator")
    weights.locator("select").select_option(run["discriminator"])
    # The same key in the JSON options and its field, with two values: said, not guessed.
    form.locator("input[name=embedder_options]").fill('{"weights": "other.safetensors"}')
    form.locator("input[name=n]").fill("60")
    form.locator("button[type=submit]").click()
    form.locator("[data-problem]").filter(has_text="weights is given twice").wait_for()
    form.locator("input[name=embedder_options]").fill('{"normalize": "none"}')
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/audits/\d+$"))
    audit = wait_for_audit(api, int(page.url.rsplit("/", 1)[1]))
    assert audit["embedder"] == "discriminator"
    assert audit["embedder_options"] == {"normalize": "none", "weights": run["discriminator"]}


def test_an_admin_deletes_generators_and_audits_from_the_pages(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    form = {"name": "to delete", "format": "safetensors", "architecture": "dcgan"}
    form["options"], form["latent_dim"] = json.dumps(OPTIONS), "8"
    content = _safetensors(tmp_path)

    def upload() -> int:
        response = api.post("/api/generators", data=form, files={"file": ("g.bin", content)})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    unused, used = upload(), upload()
    audit = api.post("/api/audits", json={"generator_id": used, "n": 40}).json()
    wait_for_audit(api, audit["id"])
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/")
    page.locator(f'[data-delete-generator="{unused}"]').click()
    page.locator(f'tr[data-generator="{unused}"]').wait_for(state="detached")
    assert api.get(f"/api/generators/{unused}").status_code == 404
    # One an audit uses stays, and the row says why.
    page.locator(f'[data-delete-generator="{used}"]').click()
    row = page.locator(f'tr[data-generator="{used}"]')
    row.locator(".error-text").wait_for()
    assert "audit" in row.locator(".error-text").inner_text()
    assert api.get(f"/api/generators/{used}").status_code == 200
    # The audit goes from its own page, then its generator can go too.
    page.goto(f"/audits/{audit['id']}")
    page.locator("[data-delete-audit]").click()
    page.wait_for_url(re.compile(r"/$"))
    assert api.get(f"/api/audits/{audit['id']}").status_code == 404
    assert api.delete(f"/api/generators/{used}").status_code == 204


def test_an_archives_size_bounds_the_pool_the_forms_offer(page: Page, api: httpx.Client) -> None:
    """An archive of 60 images cannot give a pool of 2,000: the forms say its size and offer
    at most that (the default pool asked for more, and the audit was refused)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, np.random.default_rng(0).integers(0, 256, (60, 8, 8, 1), dtype=np.uint8))
    page.goto("/generators/new")
    page.fill("[data-upload-form] input[name=name]", "sixty")
    page.select_option("[data-upload-form] select[name=format]", "samples")
    _submit(page, buffer.getvalue(), name="sixty.npz")
    summary = page.locator("[data-generator-summary]")
    summary.filter(has_text="60 of them").wait_for()
    n = page.locator("[data-uploaded] [data-audit-form] input[name=n]")
    assert (n.input_value(), n.get_attribute("max")) == ("60", "60")
    generator_id = int(re.findall(r"#(\d+)", page.inner_text("[data-generator-name]"))[0])
    page.goto(f"/audits/new?generator_id={generator_id}")
    n = page.locator("[data-audit-form] input[name=n]")
    assert (n.input_value(), n.get_attribute("max")) == ("60", "60")
    assert "60 samples" in page.locator("select[name=generator_id] option:checked").inner_text()
    page.click("[data-audit-form] button[type=submit]")
    page.wait_for_url(re.compile(r".*/audits/\d+$"))
    audit = wait_for_audit(api, int(page.url.rsplit("/", 1)[1]))
    assert audit["status"] == "done" and audit["n"] == 60
