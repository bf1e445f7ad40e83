"""Server-rendered pages: they show what the API says, fragments stand alone, and nothing is
loaded from outside the app (the dashboard must work offline)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.web.templating import count, expected, support_size
from tests.conftest import all_pairs, wait_for_audit

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]+)\"""")


@pytest.fixture
def audit(client: TestClient) -> dict[str, Any]:
    created = client.post(
        "/api/audits", json={"synthetic": {"support": 300}, "n": 400, "neighbours": 3}
    )
    return wait_for_audit(client, created.json()["id"])


def _label(client: TestClient, pair: dict[str, Any], label: str) -> None:
    response = client.post(
        f"/api/pairs/{pair['id']}/judgements", json={"label": label, "annotator": "web"}
    )
    assert response.status_code == 201


def test_home_lists_audits_jobs_and_generators(client: TestClient, audit: dict) -> None:
    html = client.get("/").text
    assert f'data-audit="{audit["id"]}" data-state="done"' in html
    assert f'data-job="{audit["job_id"]}"' in html
    assert f"{count(audit['progress']['candidate_pairs'])}</td>" in html
    assert "No generators yet" in html
    workers = client.get("/api/jobs/workers").json()
    assert workers == {
        "executor": "in-process",
        "description": "in-process worker",
        "concurrent_jobs": 1,
    }
    assert "Jobs run on the in-process worker, 1 at a time." in html


def test_audit_page_shows_the_estimate_of_the_api(client: TestClient, audit: dict) -> None:
    pairs = all_pairs(client, audit["id"])
    for pair in pairs[:3]:
        _label(client, pair, "duplicate")
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    page = client.get(f"/audits/{audit['id']}")
    assert page.status_code == 200
    assert f"<strong data-n-eff>{support_size(estimate['n_eff'])}</strong>" in page.text
    assert f"<span data-n-eff-low>{support_size(estimate['n_eff_low'])}</span>" in page.text
    assert f'data-labelled="{estimate["labelled_pairs"]}"' in page.text
    for what in ("pairs", "judgements"):  # the downloads the page links answer
        link = f"/api/audits/{audit['id']}/{what}.csv"
        assert f'href="{link}" download data-download="{what}"' in page.text
        assert client.get(link).status_code == 200

    panel = client.get(f"/audits/{audit['id']}/panel")
    assert panel.status_code == 200 and "<html" not in panel.text
    assert f"<strong data-n-eff>{support_size(estimate['n_eff'])}</strong>" in panel.text
    clusters = client.get(f"/api/audits/{audit['id']}/clusters").json()
    gallery = client.get(f"/audits/{audit['id']}/gallery").text
    assert f'data-clusters="{clusters["clusters_total"]}"' in gallery
    for url in clusters["clusters"][0]["image_urls"]:
        assert f'src="{url}"' in gallery


def test_unlabelled_audit_shows_a_lower_bound(client: TestClient, audit: dict) -> None:
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    panel = client.get(f"/audits/{audit['id']}/panel").text
    assert f"<strong data-n-eff>≥ {support_size(estimate['n_eff_low'])}</strong>" in panel
    assert 'data-clusters="0"' in client.get(f"/audits/{audit['id']}/gallery").text


def test_review_and_compare_pages(client: TestClient, audit: dict) -> None:
    review = client.get(f"/audits/{audit['id']}/review").text
    assert f'data-review data-audit="{audit["id"]}"' in review
    assert "<dialog data-name-dialog>" in review
    compare = client.get("/compare", params={"ids": [audit["id"], 999]}).text
    assert compare.count("<tr data-compare=") == 1
    assert "No audit #999: left out." in compare  # named, not silently dropped
    assert '"truth": 300' in compare  # uniform synthetic: the known N_eff is K
    # With nothing picked, every finished audit is compared.
    assert f'<tr data-compare="{audit["id"]}">' in client.get("/compare").text
    # The README's form, ids listed with commas, picks the same; a word is an HTML 422.
    listed = client.get(f"/compare?ids={audit['id']},999").text
    assert listed.count("<tr data-compare=") == 1
    for bad in ("1,x", "1,-2", str(2**63)):
        page = client.get(f"/compare?ids={bad}")
        assert page.status_code == 422 and "text/html" in page.headers["content-type"]
        assert "ids must be audit numbers" in page.text


def test_compare_counts_candidates_and_random_pairs_apart(client: TestClient, audit: dict) -> None:
    """A reviewed random pair is no candidate: "2 / 1,424" of 1 candidate and 1 random pair
    read as two candidates judged."""
    candidate = all_pairs(client, audit["id"])[0]
    random = client.get(
        f"/api/audits/{audit['id']}/pairs", params={"origin": "random", "limit": 1}
    ).json()["items"][0]
    _label(client, candidate, "distinct")
    _label(client, random, "distinct")
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    html = client.get("/compare", params={"ids": [audit["id"]]}).text
    cell = re.search(r"<td class=\"num\" data-reviewed[^>]*>(.*?)</td>", html, re.S)
    assert cell is not None
    shown = re.sub(r"<[^>]+>", "", cell.group(1))
    assert shown == (
        f"1 / {count(estimate['candidate_pairs'])} + 1 / {count(estimate['random_pairs'])} random"
    )


@pytest.mark.parametrize(
    "url", ["/audits/999", "/audits/999/review", "/audits/999/panel", "/audits/999/gallery"]
)
def test_missing_audit_is_an_html_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "audit 999" in response.text


@pytest.mark.parametrize("url", ["/sweeps/999", "/sweeps/999/cells", f"/sweeps/{2**63}"])
def test_missing_sweep_is_an_html_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "sweep" in response.text


def test_upload_form_offers_every_format_and_architecture(client: TestClient) -> None:
    html = client.get("/generators/new").text
    for fmt in ("safetensors", "state_dict", "onnx", "torchscript", "samples"):
        assert f'<option value="{fmt}"' in html
    assert '<option value="dcgan">' in html
    for name in ("name", "format", "file", "architecture", "latent_dim", "options"):
        assert f'name="{name}"' in html


def test_every_asset_is_served_by_the_app(client: TestClient, audit: dict) -> None:
    pages = [
        "/",
        "/generators/new",
        "/audits/new",
        f"/audits/{audit['id']}",
        f"/audits/{audit['id']}/review",
        "/compare",
        "/docs",
    ]
    seen: set[str] = set()
    for page in pages:
        html = client.get(page).text
        for url in ASSET.findall(html):
            assert url.startswith("/"), f"{page} loads {url} from outside the app"
            seen.add(url)
    assert {"/static/birthday.css", "/static/review.js", "/static/audit.js"} <= seen
    for url in seen:
        assert client.get(url).status_code == 200, url
    for module in ("audit.js", "review.js", "compare.js", "home.js", "forms.js"):
        source = client.get(f"/static/{module}").text
        assert "http://" not in source and "https://" not in source
        for imported in re.findall(r'from "(\./[\w.-]+)"', source):
            assert client.get(f"/static/{imported[2:]}").status_code == 200


@pytest.mark.parametrize("url", ["/nonexistent", "/audits/abc", "/audits/1/nope"])
def test_a_browser_asking_for_no_page_gets_the_html_404(client: TestClient, url: str) -> None:
    """Not a problem-details JSON body: that is for the API (and for clients not asking HTML)."""
    html = {"accept": "text/html,application/xhtml+xml"}
    response = client.get(url, headers=html)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"There is no page at {url}" in response.text
    assert client.get(url).headers["content-type"] == "application/problem+json"
    api = client.get("/api/audits/abc", headers=html)
    assert api.status_code == 422 and api.headers["content-type"] == "application/problem+json"


def test_an_id_beyond_64_bits_is_refused(client: TestClient) -> None:
    assert client.get(f"/audits/{2**64}").status_code == 422


def test_new_pages_answer_unknown_ids_with_the_html_404(client: TestClient) -> None:
    for url in ("/training/999", "/audits/999/disagreements"):
        response = client.get(url)
        assert response.status_code == 404 and "text/html" in response.headers["content-type"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "0.0"), (12.34, "12.3"), (99.94, "99.9"), (4486161.0, "4,486,161"), (None, "–")],
)
def test_estimated_counts_read_as_counts_when_large(value: float | None, shown: str) -> None:
    """D-hat's parts are not integers: a decimal while small, thousands separated when large."""
    assert expected(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.0, "1.00"),
        (1.457, "1.46"),
        (14.04, "14.0"),
        (99.4, "99.4"),
        (99.96, "100"),
        (2040.8, "2,041"),
        (None, "–"),
    ],
)
def test_n_eff_keeps_its_digits_when_small(value: float | None, shown: str) -> None:
    """A collapsed generator's N_eff of 1.00 with an interval to 1.46 read "1 - 1"."""
    assert support_size(value) == shown
