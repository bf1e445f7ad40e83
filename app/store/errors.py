"""Domain errors the API maps to problem details."""

from __future__ import annotations


class NotFound(LookupError):
    def __init__(self, what: str, ident: object, message: str | None = None) -> None:
        super().__init__(message or f"{what} {ident} does not exist")
        self.what = what


class Conflict(ValueError):
    """The request contradicts stored state (HTTP 409 or 422 by kind)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Busy(RuntimeError):
    """Too much work is already waiting; the caller may try again shortly (HTTP 503)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forbidden(PermissionError):
    """The caller is known but may not do this (HTTP 403)."""
