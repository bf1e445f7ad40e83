"""Who is calling: a bearer token (or the browser's login cookie) when auth is on, the local user
otherwise. Loopback servers need no login (one user on their own machine, DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.api.deps import StateDep
from app.settings import Settings
from app.store.annotators import annotator_for_token
from app.store.errors import Forbidden
from app.store.jobs import Starter

COOKIE = "birthday_token"
ROLE_RANK = {"reader": 0, "annotator": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    name: str | None  # None: the anonymous local user, who names themselves per request
    role: str
    authenticated: bool


LOCAL_USER = Principal(name=None, role="admin", authenticated=False)
ANONYMOUS_READER = Principal(name=None, role="reader", authenticated=False)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE)


def current_principal(request: Request, state: StateDep) -> Principal:
    if not state.settings.auth_required:
        return LOCAL_USER
    token = _token(request)
    if token:
        with state.db.read() as session:
            annotator = annotator_for_token(session, token)
        if annotator is not None:
            return Principal(name=annotator.name, role=annotator.role, authenticated=True)
        raise HTTPException(401, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
    if state.settings.public_read and request.method in ("GET", "HEAD"):
        return ANONYMOUS_READER
    raise HTTPException(401, "this server requires a token", {"WWW-Authenticate": "Bearer"})


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _require(role: str) -> Callable[[Principal], Principal]:
    def check(principal: PrincipalDep) -> Principal:
        if ROLE_RANK[principal.role] < ROLE_RANK[role]:
            raise HTTPException(403, f"this needs the {role} role")
        return principal

    return check


AnnotatorDep = Annotated[Principal, Depends(_require("annotator"))]
AdminDep = Annotated[Principal, Depends(_require("admin"))]


def starter_of(principal: Principal, settings: Settings) -> Starter:
    """Who queues work: an annotator, within BIRTHDAY_MAX_UNFINISHED_JOBS unfinished jobs;
    admins (the local user too) are not capped."""
    capped = ROLE_RANK[principal.role] < ROLE_RANK["admin"]
    return Starter(principal.name, settings.max_unfinished_jobs if capped else None)


def require_starter(
    principal: Principal, started_by: Sequence[str | None], action: str, what: str
) -> None:
    """Only whoever started the work (any of `started_by`) or an admin may stop or change it:
    a Forbidden (403) saying who may. Work started by the local user, or before starters were
    recorded (None), is an admin's to change; on loopback everyone is admin."""
    if principal.role == "admin":
        return
    names = _starters(started_by)
    if principal.name is not None and principal.name in names:
        return
    if not names:
        raise Forbidden(
            f"{who_may(names)} {action} {what}: it was started by the local user or before "
            "starters were recorded"
        )
    raise Forbidden(f"{who_may(names)} {action} {what}")


def who_may(started_by: Sequence[str | None]) -> str:
    """Who `require_starter` lets stop or change the work, as a sentence's start ("only ada, who
    started it, or an admin may"): the refusal and a page's disabled control say the same."""
    names = _starters(started_by)
    if not names:
        return "only an admin may"
    return f"only {' or '.join(names)}, who started it, or an admin may"


def _starters(started_by: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(name for name in started_by if name is not None))
