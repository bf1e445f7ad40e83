"""Dependencies: the per-app state every router needs, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.jobs.events import EventBus
from app.jobs.runner import JobRunner
from app.settings import Settings
from app.store.db import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    runner: JobRunner
    events: EventBus


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.birthday
    return state


StateDep = Annotated[AppState, Depends(get_state)]
