"""The cluster gallery's captions count like the rest of the page: thousands separated."""

from __future__ import annotations

from app.services.insights import ClusterPublic, ClustersPublic
from app.web.templating import TEMPLATES


def test_a_large_clusters_caption_separates_thousands() -> None:
    big = ClusterPublic(
        rank=1,
        size=409,
        pairs=83_436,
        direct=461,
        implied=82_975,
        members=[0, 1],
        image_urls=["/a.png", "/b.png"],
    )
    clusters = ClustersPublic(
        n=20_000,
        clusters_total=1,
        duplicate_pairs=83_436,
        direct=461,
        implied=82_975,
        from_random=0,
        clusters=[big],
        blocked=[],
    )
    html = TEMPLATES.env.get_template("_clusters.html").render(clusters=clusters, audit_id=1)
    assert "#1: 409 samples, 83,436 pairs" in html
    assert "(82,975 implied)" in html
    assert "+407" in html
