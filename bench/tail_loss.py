"""How late a lone frame arrives when its one TCP segment is lost, with and without a follow-up.

A state change is one small websocket frame, usually one segment with nothing behind it. When that
segment is lost, nothing tells the sender until its loss probe or its retransmission timer fires,
and Linux waits longer when only one segment is in flight (the probe's timer adds the minimum RTO
for a possibly delayed ACK). A second small segment sent right after it changes that: the receiver
acknowledges it selectively, the sender sees the hole and retransmits after a fraction of a round
trip (RACK).

This bench measures it on the emulated link of `bench/netem.py` (real kernel TCP at both ends):
a server in one namespace sends a 24-byte stamped message every `--interval` ms on one
connection, and on another connection the same messages each followed by a 1-byte segment in the
next event-loop turn; a client in the other namespace reads both and prints, per connection, the
one-way delay p50 / p99 / max and how many messages arrived more than `--late` ms after they were
sent. Both processes run on this machine, so `time.monotonic()` is one clock.

    .venv/bin/python bench/tail_loss.py

Needs root (namespaces), like `bench/sync_accuracy.py --networks netem`.

With `--proxy nginx` the messages go through Debian's nginx (`.ci/install-nginx`) on the server's
side of the link, as behind a reverse proxy on the server's host: the server listens on loopback,
nginx proxies an upgraded HTTP connection to it (as it does a websocket) and the client connects to
nginx. That shows whether the proxy keeps the 1-byte follow-up a segment of its own toward the
client, which is what makes it help. Every connection starts with an HTTP upgrade, direct or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.netem import emulated_link
from tests.e2e import nginx

PORT = 47311
#: the server's loopback port behind the proxy
UPSTREAM_PORT = PORT + 1
UPGRADE = b"GET / HTTP/1.1\r\nHost: tail\r\nUpgrade: tail\r\nConnection: Upgrade\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tail\r\nConnection: Upgrade\r\n\r\n"
MESSAGE = struct.Struct("!dQQ")  # send time, sequence, padding: 24 bytes
MODES = ("alone", "followed")


async def serve(
    messages: int, interval_s: float, host: str, port: int, follow_after_s: float
) -> None:
    done = asyncio.Event()
    finished = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal finished
        await reader.readuntil(b"\r\n\r\n")  # the upgrade (a proxy adds its own headers)
        writer.write(SWITCHING)
        mode = (await reader.readexactly(1))[0]
        for sequence in range(messages):
            writer.write(MESSAGE.pack(time.monotonic(), sequence, 0))
            if mode == 1:
                # its own segment (asyncio sets TCP_NODELAY): the next turn, or a moment later
                await asyncio.sleep(follow_after_s)
                writer.write(b"\0")
            await asyncio.sleep(interval_s)
        await writer.drain()
        await reader.read()  # the client closes when it has everything
        writer.close()
        finished += 1
        if finished == len(MODES):
            done.set()

    server = await asyncio.start_server(connection, host, port)
    async with server:
        await done.wait()


async def read(host: str, mode: int, messages: int) -> list[float]:
    answer = b""
    for _ in range(100):  # until the server (and the proxy) listen: processes we started
        try:
            reader, writer = await asyncio.open_connection(host, PORT)
            writer.write(UPGRADE)
            answer = await reader.readuntil(b"\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 101"):
                break
            writer.close()  # the proxy is up, the server not yet (502)
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"not upgraded: {answer!r}")
    writer.write(bytes([mode]))
    delays: list[float] = []
    while len(delays) < messages:
        sent, _, _ = MESSAGE.unpack(await reader.readexactly(MESSAGE.size))
        delays.append((time.monotonic() - sent) * 1000)
        if mode == 1:
            await reader.readexactly(1)
    writer.close()
    return delays


async def client(host: str, messages: int) -> None:
    results = await asyncio.gather(*(read(host, mode, messages) for mode in range(len(MODES))))
    print(json.dumps(results))


def summary(name: str, delays: list[float], late_ms: float) -> str:
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    late = sum(delay > late_ms for delay in delays)
    return (
        f"| {name} | {len(delays)} | {statistics.median(delays):.1f} | {p99:.1f} | "
        f"{max(delays):.1f} | {late} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument(
        "--interval", type=float, default=250.0, help="ms between messages (> a round trip: alone)"
    )
    parser.add_argument("--delay", type=float, default=50.0, help="ms each way")
    parser.add_argument("--jitter", type=float, default=10.0, help="ms, one s.d.")
    parser.add_argument("--loss", type=float, default=0.01, help="each way")
    parser.add_argument("--late", type=float, default=150.0, help="ms counted as late")
    parser.add_argument(
        "--proxy", choices=("none", "nginx"), default="none", help="on the server's side"
    )
    parser.add_argument(
        "--follow-after", type=float, default=0.0, help="ms; 0: in the next event-loop turn"
    )
    parser.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        host, port = ("127.0.0.1", UPSTREAM_PORT) if args.proxy == "nginx" else ("0.0.0.0", PORT)
        follow_after_s = args.follow_after / 1000
        asyncio.run(serve(args.messages, args.interval / 1000, host, port, follow_after_s))
        return
    if args.role == "client":
        asyncio.run(client(args.host, args.messages))
        return
    own = [sys.executable, __file__, "--messages", str(args.messages), "--proxy", args.proxy]
    with (
        emulated_link(delay_ms=args.delay, jitter_ms=args.jitter, loss=args.loss) as link,
        tempfile.TemporaryDirectory() as tmp,
    ):
        serve_argv = [*own, "--interval", str(args.interval), "--role", "server"]
        serve_argv += ["--follow-after", str(args.follow_after)]
        server = subprocess.Popen(link.exec_in(link.server_ns, serve_argv))
        proxy = None
        if args.proxy == "nginx":
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(nginx.config(tmp, str(PORT), UPSTREAM_PORT))
            nginx_argv = nginx.command(Path(tmp), conf)
            proxy = subprocess.Popen(link.exec_in(link.server_ns, nginx_argv))
        try:
            out = subprocess.run(
                link.exec_in(link.client_ns, [*own, "--role", "client", "--host", link.server_ip]),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            server.wait(timeout=30)
            if proxy is not None:
                proxy.terminate()
                proxy.wait(timeout=10)
        dropped = (link.to_client.dropped, link.to_server.dropped)
    results = json.loads(out)
    print(
        f"link: {args.delay:g} ± {args.jitter:g} ms each way, {args.loss:.0%} loss; "
        f"proxy: {args.proxy}; follow-up after {args.follow_after:g} ms; "
        f"{args.messages} messages every {args.interval:g} ms per connection; "
        f"packets dropped to the client / to the server: {dropped[0]} / {dropped[1]}"
    )
    print(f"| segments | messages | p50 ms | p99 ms | max ms | later than {args.late:g} ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, delays in zip(MODES, results, strict=True):
        print(summary(mode, delays, args.late))


if __name__ == "__main__":
    main()
