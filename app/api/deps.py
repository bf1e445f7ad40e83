"""Dependencies: the per-app state every router needs, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from app.jobs.events import EventBus
from app.jobs.runner import JobRunner
from app.services.estimate_feed import EstimateFeed
from app.services.sample_images import SampleImages
from app.settings import Settings
from app.store.db import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    runner: JobRunner
    events: EventBus
    feed: EstimateFeed  # live estimates for the audits' event streams
    samples: SampleImages  # pool images, stored or drawn again


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.birthday
    return state


StateDep = Annotated[AppState, Depends(get_state)]


# Ids are 64-bit in the store: a larger number in a path is a 422, not an overflow deep inside.
MAX_ID = 2**63 - 1
AuditId = Annotated[int, Path(ge=0, le=MAX_ID)]
PairId = Annotated[int, Path(ge=0, le=MAX_ID)]
JudgementId = Annotated[int, Path(ge=0, le=MAX_ID)]
JobId = Annotated[int, Path(ge=0, le=MAX_ID)]
GeneratorId = Annotated[int, Path(ge=0, le=MAX_ID)]
SampleIndex = Annotated[int, Path(ge=0, le=MAX_ID)]
