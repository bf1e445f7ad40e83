"""Live events of several audits and training runs on one connection.

A browser opens at most 6 HTTP/1.1 connections to a host, across all its tabs, and an event
stream holds one for as long as its page is open: a page listing many running jobs must not
hold one per job, or the seventh request to the server from that browser waits for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.api.deps import MAX_ID, AppState, StateDep
from app.jobs.events import Event
from app.services import audits as audit_service
from app.services.estimate_feed import estimate_digest
from app.store import training as training_store
from app.store.errors import NotFound

router = APIRouter(prefix="/events", tags=["audits"])

MAX_FOLLOWED = 100  # audits and training runs per stream
PAIRS_PER_EVENT = 2000  # a step's new pairs beyond this go out in several `pairs` events


@dataclass
class PairFeed:
    """New candidate pairs of a stream's one audit, read from the store after each step."""

    after_id: int  # the last pair id sent
    fetch: Callable[[int, int], list[dict[str, Any]]]  # (after id, limit) -> pairs, by id


@dataclass(frozen=True)
class Followed:
    """Something whose job publishes events: its bus topic and the field naming it in them."""

    topic: str
    key: str  # "audit_id" | "training_run_id"
    id: int
    now: Callable[[AppState], dict[str, Any]]  # its progress with its status; NotFound if gone


def followed_audit(audit_id: int) -> Followed:
    def now(state: AppState) -> dict[str, Any]:
        audit = audit_service.describe_audit(state.db, audit_id)
        return audit.progress.model_dump() | {"status": audit.status}

    return Followed(f"audit:{audit_id}", "audit_id", audit_id, now)


def followed_training_run(run_id: int) -> Followed:
    def now(state: AppState) -> dict[str, Any]:
        with state.db.read() as session:
            run = training_store.get_run(session, run_id)
            return {"step": run.step, "steps": run.steps, "status": run.status}

    return Followed(f"training:{run_id}", "training_run_id", run_id, now)


def _ids(values: list[int] | None, what: str) -> list[int]:
    ids = list(dict.fromkeys(values or []))
    if any(not 0 <= value <= MAX_ID for value in ids):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} ids are 0 to {MAX_ID}")
    return ids


def _existing(
    state: StateDep,
    audit: Annotated[
        list[int] | None, Query(description="An audit to follow; repeat it for each audit.")
    ] = None,
    training_run: Annotated[
        list[int] | None,
        Query(description="A training run to follow; repeat it for each run."),
    ] = None,
) -> list[Followed]:
    """404 before the stream starts: once it has, an error can only end it."""
    followed = [followed_audit(i) for i in _ids(audit, "audit")]
    followed += [followed_training_run(i) for i in _ids(training_run, "training run")]
    if not followed:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "name at least one audit or training run"
        )
    if len(followed) > MAX_FOLLOWED:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"at most {MAX_FOLLOWED} audits and training runs per stream",
        )
    for item in followed:
        item.now(state)  # NotFound: 404
    return followed


@router.get("", response_class=EventSourceResponse)
async def get_events(
    state: StateDep, followed: Annotated[list[Followed], Depends(_existing)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent `progress` and `status` events of the named audits and training runs
    (`?audit=1&audit=2&training_run=3`), each with its `audit_id` or `training_run_id`: the
    first event of each is its progress with its status. One connection for a list of running
    jobs; estimates come on an audit's own stream (GET /api/audits/{id}/events)."""
    async for event in event_stream(state, followed, estimates=False):
        yield event


async def event_stream(
    state: AppState,
    followed: Sequence[Followed],
    estimates: bool,
    pairs: PairFeed | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The events of these audits and runs (estimates and pairs only for a single audit), for
    as long as the client listens or the server runs."""
    single = len(followed) == 1 and followed[0].key == "audit_id"
    if (estimates or pairs is not None) and not single:
        raise ValueError("estimate and pair events name no audit: one audit per stream")
    by_topic = {item.topic: item for item in followed}
    with state.events.listen(*by_topic) as events:
        # Read after subscribing, so a status change in between is not lost.
        following = []
        for item in by_topic.values():
            try:
                initial = item.now(state)
            except NotFound:  # deleted since the check
                continue
            following.append(item)
            yield _sse(Event(item.topic, "progress", initial), item)
        if not following:
            return
        if pairs is not None:
            async for sent in _new_pairs(pairs, following[0]):
                yield sent
        watched = following[0].id if estimates else None
        with state.feed.watching(watched) if watched is not None else nullcontext() as latest:
            if watched is not None and latest is not None:
                yield _sse(Event(following[0].topic, "estimate", latest), following[0])
            async for event in events:
                if event.kind == "estimate" and not estimates:
                    continue
                if watched is not None and event.kind in ("progress", "status"):
                    state.feed.changed(watched)  # new samples and pairs move the estimate
                yield _sse(event, by_topic[event.topic])
                if pairs is not None and event.kind in ("progress", "status"):
                    async for sent in _new_pairs(pairs, following[0]):
                        yield sent


async def _new_pairs(feed: PairFeed, item: Followed) -> AsyncIterator[ServerSentEvent]:
    """`pairs` events for every candidate pair stored since the last sent, in storage order."""
    while True:
        items = await run_in_threadpool(feed.fetch, feed.after_id, PAIRS_PER_EVENT)
        if not items:
            return
        feed.after_id = int(items[-1]["id"])
        data = {"items": items, "last_id": feed.after_id, item.key: item.id}
        yield ServerSentEvent(event="pairs", data=data)
        if len(items) < PAIRS_PER_EVENT:
            return


def _sse(event: Event, item: Followed) -> ServerSentEvent:
    if event.kind == "estimate":
        # The body of GET /estimate as it is; its id names its content, so a page can compare
        # it with what it shows.
        return ServerSentEvent(event="estimate", data=event.data, id=estimate_digest(event.data))
    return ServerSentEvent(event=event.kind, data=event.data | {item.key: item.id})
