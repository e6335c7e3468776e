"""A raw HTTP/1.1 client for hostile bodies: chunked or lying about their length, sent until the
server answers (httpx sends the whole body before it reads a response, so it cannot show that a
server refused a body early).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: A safety net so a broken test fails instead of hanging; never a speed assertion.
ANSWER_TIMEOUT_S = 60


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: body bytes written to the socket before the answer arrived (or all of them)
    sent: int
    #: every chunk was written before the answer came
    sent_all: bool
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without an answer")
    status = int(status_line.split()[1])
    headers: list[tuple[str, str]] = []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    length = int(dict(headers).get("content-length", "0"))
    return status, headers, await reader.readexactly(length)


async def send(
    url: str,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    chunks: Iterable[bytes] = (),
    chunked: bool = True,
) -> Answer:
    """Send `chunks` as the body (chunked transfer unless told otherwise) until the answer comes."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1"]
    head.append(f"Host: {parts.netloc}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    answer = asyncio.create_task(_read_answer(reader))
    sent, sent_all = 0, True
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            for chunk in chunks:
                if answer.done():
                    sent_all = False
                    break
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                drained = asyncio.create_task(writer.drain())
                await asyncio.wait({drained, answer}, return_when=asyncio.FIRST_COMPLETED)
                if not drained.done():
                    drained.cancel()
                    sent_all = False
                    break
                if drained.exception() is not None:  # the server hung up: read what it said
                    sent_all = False
                    break
                sent += len(chunk)
            else:
                if chunked:
                    writer.write(b"0\r\n\r\n")
            status, raw_headers, body = await answer
    finally:
        answer.cancel()
        writer.close()
    return Answer(status, dict(raw_headers), body, sent, sent_all, raw_headers)


def multipart(parts: Iterable[tuple[str, str | None, bytes]], boundary: str) -> Iterator[bytes]:
    """The chunks of a multipart/form-data body: (field, filename or None, content) per part."""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        yield (
            (
                f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    yield f"--{boundary}--\r\n".encode()


def process_io(pid: int) -> dict[str, int]:
    """/proc/<pid>/io: `wchar` counts every byte the process wrote (files, temp files, sockets)."""
    with open(f"/proc/{pid}/io") as io:
        return {k: int(v) for k, v in (line.split(": ") for line in io.read().splitlines())}


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")
