"""Problem details for failures the request's own validation does not catch."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from app.api.problems import PROBLEM_JSON, install_problem_handlers


class _Inner(BaseModel):
    width: float = Field(le=16)


def test_a_model_a_service_builds_is_refused_like_a_request() -> None:
    """A ValidationError raised past the request's validation (a service building a model from
    the request's parts) is a 422 listing its fields, not pydantic's dump in the detail."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/build")
    def build(width: float) -> dict[str, float]:
        return {"width": _Inner(width=width).width}

    client = TestClient(app)
    assert client.get("/build", params={"width": 3}).json() == {"width": 3.0}
    response = client.get("/build", params={"width": 20})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["detail"] == "width: Input should be less than or equal to 16"
    assert body["errors"] == [
        {
            "loc": ["width"],
            "msg": "Input should be less than or equal to 16",
            "type": "less_than_equal",
        }
    ]
