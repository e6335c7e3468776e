"""A delayed, jittery, lossy IP link between two network namespaces the bench creates.

This machine's kernel has no `netem` qdisc (CONFIG_NET_SCH_NETEM is off and there are no modules),
so the link is emulated in user space at the packet level: each namespace gets one end of a
point-to-point TUN pair, and a relay thread (in this process, in the root namespace) carries every
IP packet across after `delay ± jitter` (normal distribution) and drops `loss` of them, each way.
Both kernels run real TCP over it: a lost segment is retransmitted exactly as on a real path.
Packets keep their order in each direction (jitter from queueing, not reordering).

Only the two namespaces get addresses; everything is removed on exit, also after an exception.
Needs root and /dev/net/tun.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import select
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PREFIX = "cwsync"
SERVER_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"


@dataclass
class Counters:
    forwarded: int = 0
    dropped: int = 0


@dataclass
class Link:
    server_ns: str
    client_ns: str
    server_ip: str = SERVER_IP
    client_ip: str = CLIENT_IP
    to_server: Counters = field(default_factory=Counters)
    to_client: Counters = field(default_factory=Counters)

    def exec_in(self, namespace: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def remove_stale() -> None:
    """Namespaces left by a bench that was killed (its pid is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        ours = len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit()
        if ours and not os.path.exists(f"/proc/{parts[1]}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Relay(threading.Thread):
    """Carries packets between the two TUN fds with delay, jitter and loss."""

    def __init__(self, link: Link, server_fd: int, client_fd: int, *, delay_ms: float,
                 jitter_ms: float, loss: float, seed: int) -> None:  # fmt: skip
        super().__init__(name="netem-relay", daemon=True)
        self.link, self.fds = link, (server_fd, client_fd)
        self.delay, self.jitter, self.loss = delay_ms / 1000, jitter_ms / 1000, loss
        self.random = random.Random(seed)
        self.stopping = threading.Event()

    def run(self) -> None:
        server_fd, client_fd = self.fds
        queue: list[tuple[float, int, int, bytes]] = []
        last_due = {server_fd: 0.0, client_fd: 0.0}
        sequence = 0
        while not self.stopping.is_set():
            wait = min(0.05, max(0.0, queue[0][0] - time.monotonic())) if queue else 0.05
            ready, _, _ = select.select(self.fds, [], [], wait)
            for source in ready:
                out = client_fd if source == server_fd else server_fd
                counters = self.link.to_client if out == client_fd else self.link.to_server
                while True:
                    try:
                        packet = os.read(source, 65535)
                    except BlockingIOError:
                        break
                    if self.random.random() < self.loss:
                        counters.dropped += 1
                        continue
                    delay = max(0.0, self.random.gauss(self.delay, self.jitter))
                    due = max(time.monotonic() + delay, last_due[out])
                    last_due[out] = due
                    sequence += 1
                    heapq.heappush(queue, (due, sequence, out, packet))
                    counters.forwarded += 1
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, _, out, packet = heapq.heappop(queue)
                with suppress(OSError):  # the far end is being torn down
                    os.write(out, packet)


@contextmanager
def emulated_link(
    *, delay_ms: float, jitter_ms: float, loss: float, seed: int = 15
) -> Iterator[Link]:
    """Two fresh namespaces joined by the emulated link; torn down whatever happens."""
    remove_stale()
    pid = os.getpid()
    link = Link(server_ns=f"{PREFIX}-{pid}-s", client_ns=f"{PREFIX}-{pid}-c")
    names = {link.server_ns: f"cws{pid}"[:15], link.client_ns: f"cwc{pid}"[:15]}
    fds: list[int] = []
    relay: Relay | None = None
    try:
        for namespace in names:
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        for (namespace, device), (own, peer) in zip(
            names.items(),
            [(link.server_ip, link.client_ip), (link.client_ip, link.server_ip)],
            strict=True,
        ):
            fds.append(_tun(device))  # created without an address, moved before it gets one
            ip("link", "set", device, "netns", namespace)
            ip("-n", namespace, "addr", "add", own, "peer", peer, "dev", device)
            ip("-n", namespace, "link", "set", device, "up")
        relay = Relay(link, fds[0], fds[1], delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss,
                      seed=seed)  # fmt: skip
        relay.start()
        yield link
    finally:
        if relay is not None:
            relay.stopping.set()
            relay.join(timeout=5)
        for fd in fds:
            os.close(fd)  # a TUN device goes away with its last fd
        for namespace in names:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
