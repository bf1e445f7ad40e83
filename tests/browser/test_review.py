"""Acceptance 3: the review page. Keys label, undo and move; the next pair shows from memory with
the network cut; a POST retried after a lost answer is stored once; the name is asked once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import all_pairs, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.browser

VIEW = "[data-pair-view]"


def _queued_for(
    api: httpx.Client, audit_id: int, annotator: str, limit: int = 5
) -> list[dict[str, Any]]:
    """The pairs the review design hands this annotator, in the order the page will show them:
    the first call reaches and leases them; asked again, the queue lists them first, as it will
    for the page, and the page keeps that order."""
    url = f"/api/audits/{audit_id}/next-pairs"
    params = {"annotator": annotator, "limit": limit}
    first = api.get(url, params=params).json()["items"]
    again = api.get(url, params=params).json()["items"]
    assert {p["id"] for p in again} == {p["id"] for p in first}
    return list(again)


def _label_of(api: httpx.Client, audit_id: int, pair_id: int) -> str | None:
    for origin in ("candidate", "random"):
        for label in ("duplicate", "distinct", "unsure"):
            params = {"label": label, "limit": 500, "origin": origin}
            page = api.get(f"/api/audits/{audit_id}/pairs", params=params)
            if pair_id in {p["id"] for p in page.json()["items"]}:
                return label
    return None


def _rank_text(pair: dict[str, Any]) -> str:
    return "random pair" if pair["origin"] == "random" else f"rank {pair['rank']} of "


def _wait_label(api: httpx.Client, audit_id: int, pair_id: int, label: str | None) -> None:
    wait_for(
        lambda: _label_of(api, audit_id, pair_id) == label,
        timeout=15,
        what=f"pair {pair_id} to be {label}",
    )


def _on_screen(page: Page) -> int:
    return int(page.get_attribute(VIEW, "data-pair-id") or 0)


def _shown(page: Page, pair_id: int) -> None:
    page.locator(f'{VIEW}[data-pair-id="{pair_id}"]').wait_for()


def _images_ready(page: Page) -> list[int]:
    return list(
        page.eval_on_selector_all(
            "[data-slot] img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)"
        )
    )


def test_review_by_keyboard(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory()
    aid = audit["id"]
    queued = _queued_for(api, aid, "ada")
    first = queued[0]
    page.goto(f"/audits/{aid}/review")

    # Asked once for a name, kept in localStorage.
    dialog = page.locator("dialog[data-name-dialog]")
    dialog.wait_for()
    page.fill("[data-name-input]", "not/valid")
    page.keyboard.press("Enter")
    page.locator("[data-name-problem]").wait_for()
    page.fill("[data-name-input]", "ada")
    page.keyboard.press("Enter")
    _shown(page, first["id"])
    assert page.evaluate("localStorage.getItem('birthday.annotator')") == "ada"

    # The pair at full resolution, pixelated, with its difference, distance and rank.
    page.wait_for_function("() => !document.querySelector('[data-pair-view]').dataset.loading")
    assert _images_ready(page) == [16, 16]
    assert page.eval_on_selector("[data-diff]", "c => [c.width, c.height]") == [16, 16]
    assert page.eval_on_selector("[data-slot] img", "i => getComputedStyle(i).imageRendering") in (
        "pixelated",
        "crisp-edges",
    )
    assert f"{first['distance']:.4g}" in page.inner_text("[data-distance]")
    # The rank's "of N" follows once the counter has the estimate.
    page.locator("[data-rank]").filter(
        has_text=re.compile("^" + re.escape(_rank_text(first)))
    ).wait_for()
    zoom = int(page.get_attribute(VIEW, "data-zoom") or 0)
    assert (
        page.eval_on_selector("[data-slot] img", "i => i.getBoundingClientRect().width")
        == 16 * zoom
    )
    page.keyboard.press("+")
    assert page.get_attribute(VIEW, "data-zoom") == str(zoom + 1)
    page.keyboard.press("0")
    assert page.get_attribute(VIEW, "data-zoom") == str(zoom)
    counter = api.get(f"/api/audits/{aid}/estimate").json()
    to_go = counter["stop"]["labels_to_go"]
    page.locator("[data-remaining]").filter(has_text=re.compile(rf"^{to_go:,}$")).wait_for()
    screenshot(page, "review")

    # D: stored with the annotator's name; the next pair shows from memory with the network cut.
    page.wait_for_function(
        "() => Number(document.querySelector('[data-review]').dataset.prefetched) >= 2"
    )
    # The next pairs, in the order the page queued them from the server's review queue.
    lookahead = (page.get_attribute("[data-review]", "data-lookahead") or "").split(",")
    second, third, fourth = ({"id": int(x)} for x in lookahead[:3])
    cut: list[str] = []

    def offline(route: Route) -> None:
        cut.append(route.request.url)
        route.abort()

    reads = re.compile(r".*/api/audits/\d+/(samples/|pairs|next-pair).*")
    page.route(reads, offline)
    with page.expect_response(re.compile(r".*/api/pairs/\d+/judgements$")) as posted:
        page.keyboard.press("d")
        _shown(page, second["id"])
        assert _images_ready(page) == [16, 16]
        assert not page.get_attribute(VIEW, "data-loading")
    assert posted.value.status == 201 and posted.value.json()["annotator"] == "ada"
    assert not any("/samples/" in url for url in cut)
    page.unroute(reads)
    _wait_label(api, aid, first["id"], "duplicate")

    # A POST whose answer is lost is retried with the same Idempotency-Key and stored once.
    keys: list[str | None] = []

    def lose_first_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # the server stores the judgement...
            route.abort("connectionreset")  # ...and the browser never hears back
        else:
            route.continue_()

    judgements = re.compile(r".*/api/pairs/\d+/judgements$")
    page.route(judgements, lose_first_answer)
    with page.expect_response(judgements) as replay:
        page.keyboard.press("n")
        _shown(page, third["id"])
    page.unroute(judgements)
    assert replay.value.status == 200  # the server's answer to a replayed key
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    _wait_label(api, aid, second["id"], "distinct")
    history = api.get(f"/api/audits/{aid}/estimate-history").json()
    assert history["judgements"] == 2  # one for each pair, none doubled

    page.keyboard.press("u")
    _shown(page, fourth["id"])
    _wait_label(api, aid, third["id"], "unsure")
    page.locator("[data-reviewed]").filter(has_text="3").wait_for()
    assert page.inner_text("[data-session]") == "3"

    # Z and Backspace undo, newest first: each pair comes back on screen, unlabelled.
    page.keyboard.press("z")
    _shown(page, third["id"])
    _wait_label(api, aid, third["id"], None)
    page.keyboard.press("Backspace")
    _shown(page, second["id"])
    _wait_label(api, aid, second["id"], None)
    assert api.get(f"/api/audits/{aid}/estimate-history").json()["judgements"] == 1

    # Left goes back to a judged pair; a label key there changes it; right comes forward again.
    page.keyboard.press("ArrowLeft")
    _shown(page, first["id"])
    assert page.inner_text("[data-label]") == "you said duplicate"
    page.keyboard.press("n")
    _shown(page, second["id"])
    _wait_label(api, aid, first["id"], "distinct")
    page.keyboard.press("ArrowLeft")
    _shown(page, first["id"])
    page.keyboard.press("ArrowRight")
    _shown(page, second["id"])
    # Right on a new pair skips it for now.
    page.keyboard.press("ArrowRight")
    assert _on_screen(page) not in (first["id"], second["id"])

    # A new visit does not ask again.
    page.reload()
    page.locator(f"{VIEW}[data-pair-id]").wait_for()
    assert not dialog.is_visible()
    assert page.inner_text("[data-annotator]") == "ada"
    assert page.inner_text("[data-stop]").startswith("Stopping rule")


def test_review_buttons_on_a_narrow_screen(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=1)
    first, second, *_ = _queued_for(api, audit["id"], "bob")
    page.set_viewport_size({"width": 390, "height": 844})
    page.add_init_script("localStorage.setItem('birthday.annotator', 'bob')")
    page.goto(f"/audits/{audit['id']}/review")
    _shown(page, first["id"])
    page.click("button[data-action=duplicate]")
    _shown(page, second["id"])
    _wait_label(api, audit["id"], first["id"], "duplicate")
    page.click("button[data-action=undo]")
    _shown(page, first["id"])
    _wait_label(api, audit["id"], first["id"], None)
    box = page.eval_on_selector(VIEW, "v => v.getBoundingClientRect().right")
    assert box <= 390


def test_review_says_when_nothing_is_left(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(synthetic={"support": 50}, n=30, neighbours=1, seed=7)
    random = api.get(
        f"/api/audits/{audit['id']}/pairs", params={"origin": "random", "limit": 500}
    ).json()["items"]
    for pair in all_pairs(api, audit["id"]) + random:
        body = {"label": "distinct", "annotator": "bot"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit['id']}/review")
    page.locator('[data-review][data-state="done"]').wait_for()
    # No duplicate among 30 samples: more labels cannot help, a larger pool can.
    page.locator("[data-message]").filter(has_text="No more labels needed for this pool").wait_for()
    page.locator("[data-remaining]").filter(has_text="0").wait_for()
    reviewed = audit["progress"]["candidate_pairs"] + len(random)
    assert page.inner_text("[data-reviewed]") == str(reviewed)
    assert not page.is_visible(VIEW)


@pytest.mark.parametrize(
    ("support", "target", "reached", "says"),
    [
        (3, 0.9, True, "Enough labels: the stopping rule is met"),
        (20, 0.05, False, "still wider than ±5%"),
    ],
)
def test_the_end_of_the_queue_says_whether_the_rule_is_met(
    page: Page,
    api: httpx.Client,
    audit_factory: Callable[..., dict[str, Any]],
    support: int,
    target: float,
    reached: bool,
    says: str,
) -> None:
    """The server stops handing out pairs when more labels would barely narrow the interval,
    also when it is still wider than the target: the page calls only the first the rule met."""
    audit = audit_factory(
        synthetic={"support": support, "noise": 0.0}, n=30, neighbours=2, seed=3, target=target
    )
    random = api.get(
        f"/api/audits/{audit['id']}/pairs", params={"origin": "random", "limit": 500}
    ).json()["items"]
    for pair in all_pairs(api, audit["id"]) + random:
        # identities are hidden from the API: with no noise, equal images are duplicates
        same = api.get(pair["image_urls"][0]).content == api.get(pair["image_urls"][1]).content
        body = {"label": "duplicate" if same else "distinct", "annotator": "bot"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    stop = api.get(f"/api/audits/{audit['id']}/estimate").json()["stop"]
    assert stop["reached"] is reached and (reached or stop["labels_done"]), stop
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit['id']}/review")
    page.locator('[data-review][data-state="done"]').wait_for()
    message = page.locator("[data-message]").filter(has_text=says)
    message.wait_for()
    assert ("Extend the pool" in message.inner_text()) is not reached


def test_a_page_opened_while_the_pool_mines_follows_it(page: Page, api: httpx.Client) -> None:
    """Its counters move without a judgement here: the page follows the audit's events until
    the job ends, then shows the finished pool's figures."""
    created = api.post(
        "/api/audits",
        json={"synthetic": {"support": 10**5}, "n": 20_000, "neighbours": 3, "chunk_size": 1000},
    )
    assert created.status_code == 202, created.text
    audit_id = created.json()["id"]
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit_id}/review")
    assert page.get_attribute("[data-review]", "data-audit-status") in ("queued", "running")
    done = wait_for(
        lambda: (a := api.get(f"/api/audits/{audit_id}").json())["status"] == "done" and a,
        timeout=120,
        what="the audit to finish",
    )
    stop = api.get(f"/api/audits/{audit_id}/estimate").json()["stop"]
    expected = f"{stop['labels_to_go']:,}"
    wait_for(
        lambda: page.inner_text("[data-remaining]") == expected,
        timeout=15,
        what=f"the counter to read {expected} labels to go",
    )
    assert done["progress"]["candidate_pairs"] > 0


def test_an_image_that_cannot_be_drawn_says_why(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """The server's reason (here a 409: the generator's file changed since the audit) is shown,
    not only that the images did not load."""
    import json

    audit = audit_factory(synthetic={"support": 50}, n=40, neighbours=1, seed=11)
    detail = "audit 1's samples cannot be drawn again: its generator's file is not the one audited"

    def refuse(route: Route) -> None:
        body = json.dumps({"title": "Conflict", "status": 409, "detail": detail})
        route.fulfill(status=409, content_type="application/problem+json", body=body)

    page.route(re.compile(r".*/samples/\d+\.png$"), refuse)
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit['id']}/review")
    alert = page.locator("[data-problem]")
    alert.filter(has_text="not the one audited").wait_for()
    assert "did not load: audit 1's samples cannot be drawn again" in alert.inner_text()


def test_a_page_of_sample_images_says_why_they_did_not_load(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """The audit page's duplicate gallery: its images refused (a 409), one alert gives the
    server's reason at the top of the page."""
    import json

    audit = audit_factory(synthetic={"support": 20}, n=60, neighbours=2, seed=13)
    pair = all_pairs(api, audit["id"])[0]
    body = {"label": "duplicate", "annotator": "bot"}
    assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    detail = "sample 3 cannot be drawn again: the archive ends before its declared size"

    def refuse(route: Route) -> None:
        problem = json.dumps({"title": "Conflict", "status": 409, "detail": detail})
        route.fulfill(status=409, content_type="application/problem+json", body=problem)

    page.route(re.compile(r".*/samples/\d+\.png$"), refuse)
    page.goto(f"/audits/{audit['id']}")
    alert = page.locator("[data-image-problem]")
    alert.wait_for()
    assert alert.inner_text() == f"Some sample images did not load: {detail}"
    assert page.locator("[data-image-problem]").count() == 1
