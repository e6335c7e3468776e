"""Peak server memory under 40 concurrent logins: the hashing bound against no bound.

    .venv/bin/python bench/login_memory.py [--logins 40] [--rounds 2]

Runs `cowatch serve` (embedded defaults, a temporary data dir) twice per round, interleaved:
once as shipped (COWATCH_HASH_CONCURRENCY = cores, COWATCH_HASH_QUEUE 32) and once as a floor
with the old behaviour (concurrency = the number of logins, so every argon2 hash runs at once,
64 MiB each). Each run signs up `--logins` accounts, resets the kernel's peak-RSS mark of the
server process (/proc/<pid>/clear_refs), sends all the logins at once on their own connections
and reads the peak RSS (VmHWM). Target: under 400 MB with the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import cowatch_serve  # noqa: E402

MB = 1000 * 1000
PASSWORD = "login memory bench"


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


async def burst(url: str, emails: list[str]) -> Counter[int]:
    limits = httpx.Limits(max_connections=len(emails))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        responses = await asyncio.gather(
            *(http.post("/api/auth/login", json={"email": e, "password": PASSWORD}) for e in emails)
        )
    return Counter(response.status_code for response in responses)


def run(logins: int, hash_env: dict[str, str]) -> tuple[float, float, Counter[int]]:
    """(RSS before the burst, peak RSS during it) in MB, and the answers' statuses."""
    with tempfile.TemporaryDirectory(prefix="cowatch-login-bench-") as directory:
        work = Path(directory)
        env = {
            "COWATCH_DATA_DIR": str(work / "data"),
            "COWATCH_DATABASE_URL": "",
            "COWATCH_REDIS_URL": "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_RATE_LIMIT_ENABLED": "false",
            **hash_env,
        }
        with cowatch_serve(env, work) as server:
            emails = []
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for i in range(logins):
                    account = {"email": f"b{i}@example.com", "password": PASSWORD}
                    account["username"] = f"bench{i}"
                    http.post("/api/auth/signup", json=account).raise_for_status()
                    emails.append(account["email"])
            pid = server.process.pid
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
            before = status_kib(pid, "VmHWM") * 1024 / MB
            statuses = asyncio.run(burst(server.url, emails))
            peak = status_kib(pid, "VmHWM") * 1024 / MB
    return before, peak, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    shapes = {
        f"bounded (concurrency {cores}, queue 32)": {},
        f"floor: unbounded (concurrency {args.logins})": {
            "COWATCH_HASH_CONCURRENCY": str(args.logins),
            "COWATCH_HASH_QUEUE": "0",
        },
    }
    print(f"cpus: {cores}, load average at start: {os.getloadavg()}")
    peaks: dict[str, list[float]] = {name: [] for name in shapes}
    for round_number in range(1, args.rounds + 1):
        for name, env in shapes.items():
            before, peak, statuses = run(args.logins, env)
            peaks[name].append(peak)
            print(
                f"round {round_number}, {name}: RSS {before:.0f} MB before, peak {peak:.0f} MB,"
                f" answers {dict(sorted(statuses.items()))}"
            )
    bounded, floor = (max(values) for values in peaks.values())
    print(f"load average at end: {os.getloadavg()}")
    print(
        f"worst peak: bounded {bounded:.0f} MB, unbounded {floor:.0f} MB ({bounded / floor:.2f}x)"
    )
    print(f"target < 400 MB with the bound -> {'PASS' if bounded < 400 else 'FAIL'}")


if __name__ == "__main__":
    main()
