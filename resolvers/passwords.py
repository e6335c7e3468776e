"""What a new password must not be: blank, or one of the most used passwords.

The list is zxcvbn's (its `passwords` frequency list: the 30,000 most common passwords from
leaked sets, lower case), read from the package rather than typed in here. It is an internal
module of zxcvbn (pinned in pyproject.toml): its presence is checked at import, its contents
when first used. Loaded on first use because the module holds every zxcvbn list (~16 MB).
"""

from __future__ import annotations

import importlib.util
from functools import cache

from resolvers.errors import BadInput

_LISTS_MODULE = "zxcvbn.frequency_lists"
if importlib.util.find_spec(_LISTS_MODULE) is None:
    raise RuntimeError("zxcvbn's frequency lists are missing: check the pinned version")


@cache
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranked = FREQUENCY_LISTS.get("passwords", [])
    if len(ranked) < 10_000 or "password" not in ranked:
        raise RuntimeError("zxcvbn's common-password list is not what we expect")
    return frozenset(ranked)


def check_new_password(password: str) -> None:
    """Refuse a blank or common password (case does not make a common one safe)."""
    if not password.strip():
        raise BadInput("password: must not be only spaces", field="password")
    if password.strip().lower() in common_passwords():
        raise BadInput(
            "password: too common (it is on a list of the most used passwords)", field="password"
        )
