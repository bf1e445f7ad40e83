"""The application factory: one app per Settings, so each test gets its own store and worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.api import (
    agreement,
    annotators,
    audits,
    compare,
    embedders,
    generators,
    insights,
    jobs,
    judgements,
    paper,
    training,
)
from app.api import events as event_streams
from app.api.auth import current_principal
from app.api.cross_site import CrossSiteGuard
from app.api.deps import AppState
from app.api.early_auth import AuthBeforeBody
from app.api.openapi import install_problem_schema
from app.api.problems import install_problem_handlers
from app.api.upload_limit import UploadLimit
from app.jobs.events import EventBus
from app.jobs.runner import JobRunner
from app.services.builtin import register_builtin_generators
from app.services.estimate_feed import EstimateFeed
from app.services.sample_images import SampleImages
from app.services.warmup import Warmup
from app.settings import Settings
from app.store.db import Database
from app.store.migrate import upgrade
from app.web import api_docs, pages
from app.web.templating import error_page

ROOT = Path(__file__).resolve().parents[1]

DESCRIPTION = """
Birthday-paradox support-size audits for generative models (Arora & Zhang 2017).

Sample a pool from a generator, mine candidate near-duplicate pairs, let humans judge them, and read
the effective support size **N_eff = 1/q**, the inverse Simpson index (Hill number of order 2): a lower
bound on the support size that equals it for a uniform distribution. Errors are RFC 9457 problem details.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url, settings.sqlite_busy_timeout_ms)
    register_builtin_generators(db, settings)
    events = EventBus()
    runner = JobRunner(db, settings, events)
    feed = EstimateFeed(db, events.publish)
    samples = SampleImages(db, settings)
    state = AppState(
        settings=settings, db=db, runner=runner, events=events, feed=feed, samples=samples
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        # A fresh warm-up per start: an app may be started more than once (tests do).
        warmup = Warmup(db, settings.warm_audits, settings.scratch_dir)
        app.state.warmup = warmup
        warmup.start()
        feed.start()
        try:
            yield
        finally:
            warmup.stop()
            feed.stop()
            runner.stop()
            samples.close()
            db.dispose()

    app = FastAPI(
        title="birthday",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from static/ by app.web.api_docs: the default needs a CDN
        redoc_url=None,
    )
    app.state.birthday = state
    install_problem_handlers(app, page=error_page)
    install_problem_schema(app)
    # The last added runs first: other sites' requests, then anonymous uploads, then oversized
    # bodies are refused, each before anything reads the body.
    uploads = ("/api/generators",)
    app.add_middleware(
        UploadLimit, limit=settings.upload_limit_bytes, paths=uploads, forms=("/login",)
    )
    app.add_middleware(AuthBeforeBody, state=state, paths=uploads)
    app.add_middleware(CrossSiteGuard, settings=settings)
    # Every API call is authenticated (a no-op on loopback); routes add role checks.
    api = APIRouter(prefix="/api", dependencies=[Depends(current_principal)])
    for module in (
        generators,
        audits,
        embedders,
        event_streams,
        judgements,
        jobs,
        insights,
        annotators,
        agreement,
        training,
        compare,
        paper,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(pages.router)
    app.include_router(api_docs.router)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    return app
