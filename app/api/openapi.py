"""The OpenAPI document says what errors look like: RFC 9457 problem details
(`application/problem+json`), not FastAPI's default `HTTPValidationError` body, which the API
never sends; generated clients would otherwise parse every error wrongly."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from app.api.problems import PROBLEM_JSON


class FieldError(BaseModel):
    loc: list[str] = Field(description="Where: body, query or path, then the field's names.")
    msg: str
    type: str


class Problem(BaseModel):
    """An error (RFC 9457)."""

    type: str = Field(default="about:blank")
    title: str = Field(description="The status's phrase, e.g. 'Not Found'.")
    status: int = Field(description="The HTTP status, as in the response.")
    detail: str = Field(description="What went wrong, for a person: it says what to change.")
    errors: list[FieldError] | None = Field(
        default=None, description="422 for a malformed request: each field that is wrong."
    )


WHEN = {
    "401": "Not signed in (a server not bound to loopback needs a bearer token).",
    "403": "Signed in without the role this needs.",
    "404": "Nothing with that id.",
    "409": "The resource is not in a state that allows this (e.g. still running).",
    "422": "The request is malformed or asks for something impossible; `detail` says what.",
}


def _errors_of(path: str, method: str) -> list[str]:
    codes = ["422"]
    if path.startswith("/api/"):
        codes += ["401", "403"]
    if "{" in path:
        codes.append("404")
    if method != "get":
        codes.append("409")
    return sorted(codes)


def problem_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every operation's errors as problem details."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    body = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _errors_of(path, method):
                entry = responses.setdefault(code, {"description": WHEN[code]})
                if code == "422":
                    entry["description"] = WHEN[code]
                entry["content"] = body
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_problem_schema(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_schema(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
