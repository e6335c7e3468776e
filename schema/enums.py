"""GraphQL enums over the `str` enums that `models/` shares with the columns and REST."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

import strawberry

E = TypeVar("E", bound=type[Enum])


def described_enum(cls: E, *, name: str, description: str, values: Mapping[str, str]) -> E:
    """`strawberry.enum(cls)` with a description for the type and for every value.

    The model enums cannot carry `strawberry.enum_value` (models import no framework), so the
    value descriptions are given here, and a value without one is refused at import time.
    """
    missing = {member.name for member in cls} ^ set(values)
    if missing:
        raise ValueError(f"{name}: describe exactly the enum's values (mismatch: {missing})")
    enum = strawberry.enum(cls, name=name, description=description)
    for value in enum.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[value.name]
    return enum
