"""The base of every JSON request body: unknown fields refused, and a number is a JSON number.

pydantic's lax mode reads `true` as 1 and `"3"` as 3, so `{"n_more": true}` grew a pool by one
sample and `{"target": true}` set a stopping target of 1.0. A body field that takes numbers
(alone, optional, or in a list or tuple) refuses booleans and text here, by its name; a float
written as 1e5 still counts for an int field where it is whole, as before.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def takes_numbers(annotation: Any) -> bool:
    """Whether a field's type is numbers only: int or float, optional, or a list or tuple of
    them (a Literal of numbers too). A union with text or booleans is not."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return takes_numbers(args[0])
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return bool(rest) and all(takes_numbers(a) for a in rest)
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        return bool(items) and all(takes_numbers(a) for a in items)
    if origin is Literal:
        return all(type(a) in (int, float) for a in args)
    return annotation in (int, float)


def _not_a_number(value: object) -> bool:
    if isinstance(value, list | tuple):
        return any(_not_a_number(item) for item in value)
    return isinstance(value, bool | str)


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: object, info: ValidationInfo) -> object:
        name = info.field_name
        numeric = name is not None and takes_numbers(cls.model_fields[name].annotation)
        if numeric and _not_a_number(value):
            raise ValueError("must be a number (not true, false or text)")
        return value
