"""The browser login: a token pasted once becomes an HttpOnly cookie that the API also accepts.

On loopback there is no login (the server is its user's own); with auth on, pages ask for a token
and every fetch and event stream the pages open carries the cookie. SameSite=Strict keeps other
sites from sending it, so the cookie cannot be used to post judgements from elsewhere.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import COOKIE, Principal, current_principal
from app.api.deps import StateDep
from app.store.annotators import annotator_for_token
from app.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)

COOKIE_DAYS = 30


def viewer(request: Request, state: StateDep) -> Principal | None:
    """Who is looking at a page; None when this server wants a login first."""
    try:
        return current_principal(request, state)
    except HTTPException:
        return None


ViewerDep = Annotated[Principal | None, Depends(viewer)]


def safe_next(target: str | None) -> str:
    """Only a path on this server: an absolute or protocol-relative URL would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


def _form(request: Request, target: str, message: str | None, status: int) -> HTMLResponse:
    context = {"next": target, "message": message, "viewer": None}
    return TEMPLATES.TemplateResponse(request, "login.html", context, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, state: StateDep, next: str | None = None) -> Response:
    if not state.settings.auth_required:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, safe_next(next), None, 200)


@router.post("/login", response_class=HTMLResponse)
def log_in(
    request: Request,
    state: StateDep,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = safe_next(next)
    with state.db.read() as session:
        annotator = annotator_for_token(session, token.strip())
    if annotator is None:
        return _form(request, target, "That token is not valid, or it was revoked.", 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token.strip(),
        max_age=COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def log_out() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
