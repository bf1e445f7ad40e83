"""Live events of several audits on one connection.

A browser opens at most 6 HTTP/1.1 connections to a host, across all its tabs, and an event
stream holds one for as long as its page is open: a page listing many running audits must not
hold one per audit, or the seventh request to the server from that browser waits for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.deps import MAX_ID, AppState, StateDep
from app.jobs.events import Event
from app.services import audits as audit_service
from app.services.estimate_feed import estimate_digest
from app.store.errors import NotFound

router = APIRouter(prefix="/events", tags=["audits"])

MAX_AUDITS = 100  # audits per stream


def _existing_audits(
    state: StateDep,
    audit: Annotated[
        list[int] | None, Query(description="An audit to follow; repeat it for each audit.")
    ] = None,
) -> list[int]:
    """404 before the stream starts: once it has, an error can only end it."""
    if not audit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "name at least one audit")
    ids = list(dict.fromkeys(audit))
    if len(ids) > MAX_AUDITS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_AUDITS} audits per stream"
        )
    if any(not 0 <= audit_id <= MAX_ID for audit_id in ids):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"audit ids are 0 to {MAX_ID}")
    for audit_id in ids:
        audit_service.describe_audit(state.db, audit_id)  # NotFound: 404
    return ids


@router.get("", response_class=EventSourceResponse)
async def get_events(
    state: StateDep, audit_ids: Annotated[list[int], Depends(_existing_audits)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent `progress` and `status` events of the named audits (`?audit=1&audit=2`), each
    with its `audit_id`: the first event of each audit is its progress with its status. One
    connection for a list of running audits; estimates come on an audit's own stream
    (GET /api/audits/{id}/events)."""
    async for event in audit_event_stream(state, audit_ids, estimates=False):
        yield event


async def audit_event_stream(
    state: AppState, audit_ids: Sequence[int], estimates: bool
) -> AsyncIterator[ServerSentEvent]:
    """The events of these audits (estimates only for a single audit), for as long as the
    client listens or the server runs."""
    if estimates and len(audit_ids) != 1:
        raise ValueError("estimate events name no audit: one audit per stream")
    topics = {f"audit:{audit_id}": audit_id for audit_id in audit_ids}
    with state.events.listen(*topics) as events:
        # Read after subscribing, so a status change in between is not lost.
        following = []
        for audit_id in audit_ids:
            try:
                initial = audit_service.describe_audit(state.db, audit_id)
            except NotFound:  # deleted since the check
                continue
            following.append(audit_id)
            progress = initial.progress.model_dump() | {"status": initial.status}
            yield _sse(Event(f"audit:{audit_id}", "progress", progress), audit_id)
        if not following:
            return
        watched = following[0] if estimates else None
        with state.feed.watching(watched) if watched is not None else nullcontext() as latest:
            if watched is not None and latest is not None:
                yield _sse(Event(f"audit:{watched}", "estimate", latest), watched)
            async for event in events:
                if event.kind == "estimate" and not estimates:
                    continue
                if watched is not None and event.kind in ("progress", "status"):
                    state.feed.changed(watched)  # new samples and pairs move the estimate
                yield _sse(event, topics[event.topic])


def _sse(event: Event, audit_id: int) -> ServerSentEvent:
    if event.kind == "estimate":
        # The body of GET /estimate as it is; its id names its content, so a page can compare
        # it with what it shows.
        return ServerSentEvent(event="estimate", data=event.data, id=estimate_digest(event.data))
    return ServerSentEvent(event=event.kind, data=event.data | {"audit_id": audit_id})
