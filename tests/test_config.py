"""docs/CONFIGURATION.md names every setting in `Settings` with its real default and range."""

from __future__ import annotations

import re
from pathlib import Path

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from config import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "CONFIGURATION.md"
ROW = re.compile(r"^\| `(COWATCH_[A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*?) \|$")
BOUNDS = ((Ge, "≥", "ge"), (Gt, ">", "gt"), (Le, "≤", "le"), (Lt, "<", "lt"))


def default_of(info: FieldInfo) -> str | None:
    """How the table shows a default; None for a computed one (the text is free there)."""
    if info.default_factory is not None:
        return None
    value = info.get_default()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if str(value) else '`""` (empty)'


def range_of(info: FieldInfo) -> str:
    if info.annotation is bool:
        return "`true` / `false`"
    parts = [
        f"{symbol} {getattr(item, name)}"
        for item in info.metadata
        for kind, symbol, name in BOUNDS
        if isinstance(item, kind)
    ]
    return ", ".join(parts) or "—"


def expected_rows() -> dict[str, tuple[str | None, str]]:
    return {
        f"COWATCH_{name.upper()}": (default_of(info), range_of(info))
        for name, info in Settings.model_fields.items()
    }


def documented_rows() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            name, default, bounds, meaning = match.groups()
            rows[name] = (default, bounds, meaning)
    return rows


def test_every_setting_is_documented_with_its_default_and_range() -> None:
    documented = documented_rows()
    expected = expected_rows()
    drift = []
    for name, (default, bounds) in expected.items():
        row = documented.get(name)
        shown = default if default is not None else "(computed: say how)"
        wanted = f"| `{name}` | {shown} | {bounds} | <meaning, units> |"
        if row is None:
            drift.append(wanted)
            continue
        shown_default, shown_bounds, meaning = row
        default_ok = shown_default == default if default is not None else bool(shown_default)
        if not default_ok or shown_bounds != bounds or not meaning.strip():
            drift.append(wanted)
    assert not drift, "update docs/CONFIGURATION.md:\n" + "\n".join(drift)
    assert set(documented) == set(expected), set(documented) ^ set(expected)


def test_the_check_notices_a_wrong_default() -> None:
    info = Settings.model_fields["jwt_ttl_s"]
    assert default_of(info) == "`86400`"
    assert range_of(info) == "≥ 60"
    assert documented_rows()["COWATCH_JWT_TTL_S"][0] == default_of(info)
