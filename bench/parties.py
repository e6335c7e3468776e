"""Watch parties at scale: many small rooms, each changing its playhead every second.

    python bench/parties.py [--parties 2000] [--members 5] [--seconds 30] [--rounds 2]
    # the production shape: PostgreSQL, Redis, two processes, each party's members split
    python bench/parties.py --postgres postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/0 --servers 2

Two targets, the same clients, measured in the same run, phases alternating floor → Cowatch:
- floor: `bench/party_floor.py`, a bare Starlette websocket server relaying the same frames to
  the same rooms (with `--servers 2`, two of them sharing rooms through Redis pub/sub);
- Cowatch: `cowatch serve` (embedded SQLite and in-memory bus; or PostgreSQL + Redis), parties
  created with `POST /api/parties`, members joined with `POST /api/parties/join` (guests with
  member tokens; the host with its account token).
Every member subscribes on `/ws` (`party:subscribe`); each second every party's host sends
`party:playback` (a new position, playing) and every member answers the WAITING frame with
`party:ready`, so the barrier releases and the party goes PLAYING. The sockets are spread over
client processes on uvloop (`bench/party_clients.py`); a party's members sit in one client
process, and with several servers member j of party i talks to server (i + j) mod N (with
`--together`, every member of party i talks to server i mod N, its host's and its home).

With `--chat` (issue 14), every party also sends one `chat:send` per period, half a period after
its change, from each member in turn; every member must receive it as `party:chat_message`.

Reported per target: latency from the change to the last member's PLAYING `party:playback`
(p50/p99/max; and to the last WAITING one), the barrier's own share (from the last member's
WAITING, which every member answers at once with its ready, to the last PLAYING), rounds that
never completed, events lost or out of order (must be 0), error frames, each server's CPU (share
of one core over the measured seconds), how long it was ready to run but waited for a CPU (other
work on the machine), and RSS, the clients' CPU and how late they sent the changes; with
`--chat`, the latency from `chat:send` to the last member's frame and the messages some member
never got.
Exit status 0 only if nothing was lost, reordered or left incomplete and no server logged an
error.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import profile
from bench.common import (
    SOCKET_CAPS_OFF,
    cpu_seconds,
    create_database,
    drop_database,
    error_lines,
    free_port,
    raise_open_files,
    rss_mb,
    runnable_wait_seconds,
    start,
    start_cowatch,
    viewer_with_videos,
    wait_healthy,
)
from bench.party_clients import MemberSpec, PartySpec, Schedule, Tally, client_process

HIGH = "10000000/minute"


@dataclass
class Target:
    name: str
    ports: list[int]
    pids: list[int]
    #: per party: its id and each member's `/ws` path (the host first)
    parties: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass
class Phase:
    target: str
    tallies: list[Tally]
    server_cpu: list[float]  # cores, over the measured seconds
    server_rss: list[float]  # MB, at the end of the measured seconds
    seconds: float
    #: share of the measured seconds each server's main thread was ready to run but not running
    #: (a machine shared with other work: CPU it wanted and did not get)
    server_starved: list[float] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        out: list[float] = []
        for tally in self.tallies:
            out.extend(array("d", getattr(tally, name)))
        return out


def ms(value: float) -> str:
    """A latency; ∞ when the share above it never completed (superseded or still waiting)."""
    return "∞" if value == float("inf") else f"{value:.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def specs(target: Target, client_procs: int, *, together: bool) -> list[list[PartySpec]]:
    """The parties of each client process; member j of party i on server (i + j) mod N, or
    on server i mod N with every other member of its party (`together`)."""
    count = len(target.parties)
    shares: list[list[PartySpec]] = [[] for _ in range(client_procs)]
    for index, (party_id, paths) in enumerate(target.parties):
        members = [
            MemberSpec(
                port=target.ports[(index + (0 if together else j)) % len(target.ports)], path=path
            )
            for j, path in enumerate(paths)
        ]
        shares[index % client_procs].append(PartySpec(party_id, members, index / count))
    return shares


async def wait_idle(pids: list[int], *, below: float = 0.1, deadline_s: float = 120) -> None:
    """Until the servers use less than `below` of a core over a second (closing sockets)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(1.0)  # sampling another process's CPU: nothing to await instead
        if sum(cpu_seconds(pid) for pid in pids) - before < below * len(pids):
            return


async def phase(
    target: Target, args: argparse.Namespace, *, profile_to: Path | None = None
) -> Phase:
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    pipes, procs = [], []
    for share in specs(target, args.client_procs, together=args.together):
        ours, theirs = context.Pipe()
        proc = context.Process(target=client_process, args=(theirs, share))
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    connected = time.monotonic()
    answers = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    if any(answer != "ready" for answer in answers):
        for proc in procs:
            proc.kill()
        raise RuntimeError(f"{target.name}: clients could not subscribe: {answers}")
    sockets = sum(len(paths) for _, paths in target.parties)
    print(
        f"  {target.name}: {sockets} sockets subscribed in {time.monotonic() - connected:.1f} s",
        flush=True,
    )
    await wait_idle(target.pids, below=0.2, deadline_s=30)
    schedule = Schedule(
        start=time.monotonic() + 1.0,
        warmup=args.warmup,
        seconds=args.seconds,
        rate=args.rate,
        drain=args.drain,
        chat=args.chat,
    )
    for pipe in pipes:
        pipe.send(schedule)
    await asyncio.sleep(schedule.start + schedule.warmup - time.monotonic())
    cpu_before = [cpu_seconds(pid) for pid in target.pids]
    wait_before = [runnable_wait_seconds(pid) for pid in target.pids]
    profiling = None
    if profile_to is not None:
        profiling = loop.run_in_executor(
            None, profile.record, target.pids[0], args.seconds, profile_to
        )
    await asyncio.sleep(schedule.start + schedule.warmup + schedule.seconds - time.monotonic())
    cpu = [
        (cpu_seconds(pid) - before) / args.seconds
        for pid, before in zip(target.pids, cpu_before, strict=True)
    ]
    starved = [
        (runnable_wait_seconds(pid) - before) / args.seconds
        for pid, before in zip(target.pids, wait_before, strict=True)
    ]
    rss = [rss_mb(pid) for pid in target.pids]
    tallies: list[Tally] = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    if profiling is not None:
        await profiling
    for proc in procs:
        await loop.run_in_executor(None, proc.join, 60)
    await wait_idle(target.pids)
    return Phase(target.name, tallies, cpu, rss, args.seconds, starved)


def report(result: Phase, args: argparse.Namespace) -> dict[str, Any]:
    rounds = sum(t.rounds for t in result.tallies)
    completed = sum(t.completed for t in result.tallies)
    # A round that never completed counts as infinitely late, so p99 cannot hide it.
    latencies = result.values("latencies") + [float("inf")] * (rounds - completed)
    waits = result.values("waiting")
    barriers = result.values("barrier")
    lag = result.values("lag")
    errors: Counter[str] = Counter()
    for tally in result.tallies:
        errors.update(tally.errors)
    client_cpu = sum(t.cpu_s for t in result.tallies) / (args.warmup + args.seconds)
    row = {
        "target": result.target,
        "rounds": rounds,
        "incomplete": rounds - completed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
        "wait_p99": percentile(waits, 0.99),
        "waits": waits,
        "barriers": barriers,
        "received": sum(t.received for t in result.tallies),
        "lost": sum(t.lost for t in result.tallies),
        "out_of_order": sum(t.out_of_order for t in result.tallies),
        "errors": dict(errors),
        "closed": sum(t.closed for t in result.tallies),
        "server_cpu": result.server_cpu,
        "server_rss": result.server_rss,
        "client_cpu": client_cpu,
        "lag_p99": percentile(lag, 0.99),
        "latencies": latencies,
        "chats": sum(t.chats for t in result.tallies),
        "chats_lost": sum(t.chats - t.chats_completed for t in result.tallies),
        "chat_latencies": result.values("chat_latencies"),
    }
    print(
        f"    {row['target']:8} rounds {rounds} ({row['incomplete']} incomplete); "
        f"change → last PLAYING p50 {ms(row['p50'])}, p99 {ms(row['p99'])}, "
        f"max {ms(row['max'])}; → last WAITING p99 {ms(row['wait_p99'])}; "
        f"last WAITING → last PLAYING p50 {ms(percentile(barriers, 0.5))}, "
        f"p99 {ms(percentile(barriers, 0.99))}\n"
        f"             frames {row['received']:,}, lost {row['lost']}, "
        f"out of order {row['out_of_order']}, errors {row['errors']}, "
        f"closed sockets {row['closed']}; server CPU "
        + ", ".join(f"{c * 100:.0f} %" for c in row["server_cpu"])
        + " (runnable but waiting for a CPU "
        + ", ".join(f"{w * 100:.0f} %" for w in result.server_starved)
        + "), RSS "
        + ", ".join(f"{r:.0f} MB" for r in row["server_rss"])
        + f"; clients CPU {client_cpu * 100:.0f} % (all), send lag p99 {row['lag_p99']:.1f} ms",
        flush=True,
    )
    if args.chat:
        chat = row["chat_latencies"] + [float("inf")] * row["chats_lost"]
        print(
            f"             chat: {row['chats']} messages, {row['chats_lost']} not received by "
            f"every member; chat:send → last member p50 {ms(percentile(chat, 0.5))}, "
            f"p99 {ms(percentile(chat, 0.99))}",
            flush=True,
        )
    return row


async def prepare_cowatch(args: argparse.Namespace, target: Target, database_url: str) -> None:
    """The host's parties (REST, as a client would) and their guests, joined through the API."""
    urls = [f"http://127.0.0.1:{port}" for port in target.ports]
    token, (video_id,) = await viewer_with_videos(
        urls[0], database_url, ["party bench"], transcoded=True
    )
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def post(url: str, **kwargs: Any) -> httpx.Response:
            # A keep-alive connection the loaded server closed as it was reused: once more.
            for attempt in range(3):
                try:
                    async with gate:
                        return await http.post(url, **kwargs)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        async def party(index: int) -> tuple[str, list[str]]:
            url = urls[index % len(urls)]
            created = await post(
                f"{url}/api/parties",
                json={
                    "video_id": video_id,
                    "name": f"bench party {index}",
                    "visibility": "UNLISTED",
                    "control": "HOST",
                    "max_members": args.members,
                },
                headers=headers,
            )
            assert created.status_code == 201, created.text
            body = created.json()
            paths = [f"/ws?token={token}"]
            for j in range(1, args.members):
                joined = await post(
                    f"{urls[(index + j) % len(urls)]}/api/parties/join",
                    json={"code": body["code"], "display_name": f"guest {j}"},
                )
                assert joined.status_code == 200, joined.text
                paths.append(f"/ws?token={joined.json()['member_token']}")
            return body["id"], paths

        started = time.monotonic()
        target.parties = list(await asyncio.gather(*(party(i) for i in range(args.parties))))
    print(
        f"  Cowatch: {args.parties} parties created and {args.parties * (args.members - 1)} "
        f"guests joined through the API in {time.monotonic() - started:.1f} s",
        flush=True,
    )


async def forget_parties(redis_url: str, targets: list[Target]) -> None:
    """Drop the live records of Cowatch's bench parties (they would stay for their TTL)."""
    # Imported here: the client processes this module starts need none of it.
    from models.live import RedisLive
    from resolvers.party_state import live_key

    live = RedisLive(redis_url)
    try:
        for target in targets:
            if target.name == "Cowatch":
                for party_id, _ in target.parties:
                    await live.forget(live_key(party_id))
    finally:
        await live.close()


def prepare_floor(args: argparse.Namespace, target: Target) -> None:
    for index in range(args.parties):
        party_id = f"floor-{index:05d}-{uuid.uuid4().hex[:8]}"
        target.parties.append(
            (party_id, [f"/ws?token={party_id}.{j}" for j in range(args.members)])
        )


async def measure(args: argparse.Namespace, targets: list[Target], tmp: Path) -> int:
    rows: dict[str, list[dict[str, Any]]] = {target.name: [] for target in targets}
    for index in range(args.rounds):
        print(f"round {index + 1} of {args.rounds}", flush=True)
        for target in targets:
            rows[target.name].append(report(await phase(target, args), args))
    summary = None
    if args.profile and any(t.name == "Cowatch" for t in targets):
        cowatch = next(t for t in targets if t.name == "Cowatch")
        print("profiled round (not counted)", flush=True)
        out = Path(args.profile_out) if args.profile_out else tmp / "profile.txt"
        report(await phase(cowatch, args, profile_to=out), args)
        summary = profile.summarize(out, top=20)

    load = os.getloadavg()
    print(
        f"\nparties, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average now {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(
        f"{args.parties} parties x {args.members} members, {args.rate:g} change/party/s"
        + (" and as many chat messages" if args.chat else "")
        + ", "
        f"{len(targets[0].ports)} server process(es) per target"
        + (" (each party's members on one)" if args.together and len(targets[0].ports) > 1 else "")
        + f", {args.client_procs} client "
        f"processes; {args.rounds} phase(s) of {args.seconds:g} s measured per target "
        f"(after {args.warmup:g} s warm-up each)"
    )
    print(
        "\n| target | p50 | p99 | max | → WAITING p99 | WAITING → PLAYING p50 / p99 "
        "| rounds (incomplete) | lost | out of order | server CPU | server RSS |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pooled: dict[str, float] = {}
    chat_rows: list[str] = []
    ok = True
    for name, phases in rows.items():
        latencies = [x for row in phases for x in row["latencies"]]
        barriers = [x for row in phases for x in row["barriers"]]
        pooled[name] = percentile(latencies, 0.99)
        per_server = zip(*(row["server_cpu"] for row in phases), strict=True)
        cpu = [sum(c) / len(phases) for c in per_server]
        rss = [max(r) for r in zip(*(row["server_rss"] for row in phases), strict=True)]
        rounds = sum(row["rounds"] for row in phases)
        incomplete = sum(row["incomplete"] for row in phases)
        lost = sum(row["lost"] for row in phases)
        out_of_order = sum(row["out_of_order"] for row in phases)
        ok = ok and not (incomplete or lost or out_of_order)
        ok = ok and not any(row["errors"] or row["closed"] for row in phases)
        print(
            f"| {name} | {ms(percentile(latencies, 0.5))} | {ms(pooled[name])} "
            f"| {ms(max(latencies, default=float('nan')))} "
            f"| {ms(percentile([x for row in phases for x in row['waits']], 0.99))} "
            f"| {ms(percentile(barriers, 0.5))} / {ms(percentile(barriers, 0.99))} "
            f"| {rounds:,} ({incomplete}) | {lost} | {out_of_order} "
            f"| {' + '.join(f'{c * 100:.0f} %' for c in cpu)} "
            f"| {' + '.join(f'{r:.0f} MB' for r in rss)} |"
        )
        if args.chat:
            chats_lost = sum(row["chats_lost"] for row in phases)
            chat = [x for row in phases for x in row["chat_latencies"]]
            chat += [float("inf")] * chats_lost
            ok = ok and not chats_lost
            chat_rows.append(
                f"| {name} | {sum(row['chats'] for row in phases):,} | {chats_lost} "
                f"| {ms(percentile(chat, 0.5))} | {ms(percentile(chat, 0.99))} |"
            )
    if chat_rows:
        print("\n| chat | messages | lost | p50 | p99 |\n|---|---:|---:|---:|---:|")
        print("\n".join(chat_rows))
    if "floor" in pooled and "Cowatch" in pooled:
        if float("inf") in (pooled["Cowatch"], pooled["floor"]):
            print(
                "\nCowatch p99 ÷ floor p99: not defined (over 1 % of some target's rounds "
                "never completed: it did not keep up with the rate)"
            )
        else:
            print(f"\nCowatch p99 ÷ floor p99: {pooled['Cowatch'] / pooled['floor']:.2f}x")
    if summary is not None:
        print(f"\npy-spy, Cowatch server 0 during the profiled round:\n{summary}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=2000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1.0, help="changes per party per second")
    parser.add_argument("--seconds", type=float, default=30, help="measured, per phase")
    parser.add_argument("--warmup", type=float, default=5, help="not measured, per phase")
    parser.add_argument("--drain", type=float, default=10, help="wait for the last rounds")
    parser.add_argument("--rounds", type=int, default=2, help="phases per target")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument(
        "--chat", action="store_true", help="one chat message per party per change, too"
    )
    parser.add_argument("--only", choices=["floor", "Cowatch"], help="run one target alone")
    parser.add_argument("--ping-interval", type=float, default=0.5, help="party heartbeat (s)")
    parser.add_argument("--ping-timeout", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="one more, py-spied round")
    parser.add_argument(
        "--profile-out", metavar="PATH", help="keep the profiled round's samples (py-spy raw)"
    )
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="run on a throw-away database")
    parser.add_argument("--redis", metavar="URL", help="Cowatch's bus and the floor's relay")
    parser.add_argument("--servers", type=int, default=1, help="processes per target")
    parser.add_argument(
        "--together",
        action="store_true",
        help="each party's members all on its host's server (parties still split over servers)",
    )
    args = parser.parse_args()
    if args.servers > 1 and not args.redis:
        parser.error("--servers > 1 needs --redis (the in-memory bus is per process)")
    raise_open_files(args.parties * args.members + 2000)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        database_url = f"sqlite+aiosqlite:///{data_dir / 'cowatch.db'}"
        if args.postgres:
            database_url = asyncio.run(create_database(args.postgres))
        env = {
            "COWATCH_DATA_DIR": str(data_dir),
            "COWATCH_DATABASE_URL": database_url if args.postgres else "",
            "COWATCH_REDIS_URL": args.redis or "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_JWT_SECRET": "parties-" + uuid.uuid4().hex * 2,
            "COWATCH_RATE_LIMIT_PREFIX": f"parties-{uuid.uuid4().hex[:8]}",
            "COWATCH_TRANSCODE_QUEUE": f"parties-{uuid.uuid4().hex[:8]}",
            "COWATCH_LOG_LEVEL": "warning",
            **SOCKET_CAPS_OFF,
            # Limits stay on, sized for one bench address holding every member.
            "COWATCH_RATE_LIMIT_API": HIGH,
            "COWATCH_RATE_LIMIT_PARTY_JOIN": HIGH,
            "COWATCH_RATE_LIMIT_PLAYER_STATE": HIGH,
            "COWATCH_RATE_LIMIT_TIMESTAMP": HIGH,
            "COWATCH_RATE_LIMIT_CHAT": HIGH,
            "COWATCH_WS_MESSAGE_RATE": "1000",
            "COWATCH_WS_MESSAGE_BURST": "10000",
            "COWATCH_PARTY_PING_INTERVAL_S": str(args.ping_interval),
            "COWATCH_PARTY_PING_TIMEOUT_S": str(args.ping_timeout),
        }
        processes = []
        logs: list[Path] = []
        targets: list[Target] = []
        try:
            if args.only != "Cowatch":
                floor = Target("floor", [free_port() for _ in range(args.servers)], [])
                for port in floor.ports:
                    argv = [sys.executable, str(Path(__file__).parent / "party_floor.py")]
                    argv += ["--port", str(port), "--ping-interval", str(args.ping_interval)]
                    argv += ["--ping-timeout", str(args.ping_timeout)]
                    argv += ["--redis", args.redis] if args.redis else []
                    logs.append(tmp / f"floor-{port}.log")
                    processes.append(start(argv, {}, logs[-1]))
                    floor.pids.append(processes[-1].pid)
                targets.append(floor)
            if args.only != "floor":
                cowatch = Target("Cowatch", [free_port() for _ in range(args.servers)], [])
                # One after the other: the first one creates and migrates the database.
                for port in cowatch.ports:
                    logs.append(tmp / f"cowatch-{port}.log")
                    processes.append(start_cowatch(port, env, logs[-1]))
                    cowatch.pids.append(processes[-1].pid)
                targets.append(cowatch)
            for target in targets:
                if target.name == "floor":
                    for port in target.ports:
                        wait_for_port(port)
                    prepare_floor(args, target)
                else:
                    asyncio.run(prepare_cowatch(args, target, database_url))
            print(f"load average before: {os.getloadavg()}", flush=True)
            if autogroups():
                print(
                    "kernel autogroups are on: processes of other sessions share the CPUs with "
                    "this bench however they are nice'd (see 'runnable but waiting')",
                    flush=True,
                )
            result = asyncio.run(measure(args, targets, tmp))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            if args.postgres:
                asyncio.run(drop_database(args.postgres, database_url))
            if args.redis:
                asyncio.run(forget_parties(args.redis, targets))
        errors = [line for log in logs for line in error_lines(log)]
        print(f"server log ERROR lines: {len(errors)}")
        for log in logs:
            lines = log.read_text(errors="replace").splitlines()
            first = next((i for i, line in enumerate(lines) if "ERROR" in line), None)
            if first is not None:
                print(f"{log.name}:", *lines[first : first + 40], sep="\n  ")
        return result if not errors else 1


def autogroups() -> bool:
    """Whether the kernel schedules by session first (nice then orders only within one)."""
    flag = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return flag.exists() and flag.read_text().strip() == "1"


def wait_for_port(port: int) -> None:
    """The floor has no HTTP routes: any answer (404) means it listens."""
    wait_healthy(f"http://127.0.0.1:{port}/")


if __name__ == "__main__":
    sys.exit(main())
