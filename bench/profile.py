"""Sample a server with py-spy and say where its CPU goes, by library, innermost frame first.

py-spy is a bench-only tool (`pip install py-spy`); it samples the process from outside, so
the server runs unmodified. Idle samples (waiting in the event loop's poll) are left out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: (label, pattern on "function (file:line)"), tried from the leaf frame towards the root;
#: the first frame that matches any rule names the sample's bucket.
RULES: list[tuple[str, re.Pattern[str]]] = [
    (label, re.compile(pattern))
    for label, pattern in [
        ("database driver (asyncpg / sqlite3)", r"asyncpg/|aiosqlite/|sqlite3/"),
        ("SQLAlchemy / SQLModel", r"sqlalchemy/|sqlmodel/"),
        ("GraphQL parse", r"graphql/language/(parser|lexer|source|ast)\.py"),
        ("GraphQL validate + limits", r"graphql/validation/|graphql/language/visitor\.py"),
        ("GraphQL execute (graphql-core)", r"graphql/"),
        ("Strawberry", r"strawberry/"),
        ("JSON", r"json/|orjson"),
        ("HTTP + middleware (uvicorn, Starlette)", r"uvicorn/|starlette/|httptools/"),
        ("asyncio (tasks, futures)", r"asyncio/|uvloop/"),
        ("pydantic", r"pydantic"),
        ("Cowatch code", r"(^|[ (/])(schema|resolvers|rest_compat|edge|models|storage|web)/"),
    ]
]
_FRAME = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def record(pid: int, seconds: float, out: Path, *, rate: int = 200) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--gil",  # samples holding the GIL: uvloop releases it while it waits
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def bucket(frames: list[str]) -> str:
    for frame in reversed(frames):
        for label, pattern in RULES:
            if pattern.search(frame):
                return label
    return "other"


def summarize(path: Path, *, top: int = 12) -> str:
    """Buckets by share of samples, then the functions most often on top of the stack."""
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    tasks = 0
    total = 0
    for line in path.read_text().splitlines():
        match = _FRAME.match(line)
        if not match:
            continue
        frames = match["stack"].split(";")
        count = int(match["count"])
        total += count
        buckets[bucket(frames)] += count
        leaves[frames[-1]] += count
        if any("create_task" in frame or "ensure_future" in frame for frame in frames):
            tasks += count
    if not total:
        return "no samples"
    lines = [f"{total} samples"]
    lines += [f"  {count / total:6.1%}  {label}" for label, count in buckets.most_common()]
    lines.append(f"  {tasks / total:6.1%}  of samples inside asyncio task creation")
    lines.append("  top of stack:")
    lines += [f"  {count / total:6.1%}  {leaf}" for leaf, count in leaves.most_common(top)]
    return "\n".join(lines)
