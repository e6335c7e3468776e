"""Run PyAV work in a child process the event loop can await, time out and kill."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
# Not plain fork: the parent has an event loop, database threads and sockets. A fork server is
# a clean single-threaded process started once, with PyAV already imported; each job forks it.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["workers.media"])


class ProcessCrashed(Exception):
    """The child died without an answer (killed, out of memory, a crash inside FFmpeg)."""


def _exit_with(owner_pid: int) -> None:
    """Exit when the process that asked for this work is gone (killed outright, say).

    The fork server, not the owner, is this process's parent and outlives it, so parent-death
    signals do not help; a one-second check does.
    """
    while True:
        time.sleep(1)
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            os._exit(1)


def _child(conn: Connection, owner_pid: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with, args=(owner_pid,), daemon=True).start()
    try:
        answer: tuple[str, Any] = ("ok", fn(*args))
    except Exception as exc:
        answer = ("error", exc)
    try:
        conn.send(answer)
    except Exception as exc:  # an unpicklable result or exception
        conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    conn.close()


async def run_in_process(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a fresh process; its exception is re-raised here; cancelling kills it.

    One process per call rather than a shared pool: a job that is cancelled or times out takes
    its process with it, and a crash costs only that job.
    """
    loop = asyncio.get_running_loop()
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, os.getpid(), fn, args), daemon=True)
    readable = asyncio.Event()
    try:
        process.start()
        sender.close()
        loop.add_reader(receiver.fileno(), readable.set)
        try:
            await readable.wait()
        finally:
            loop.remove_reader(receiver.fileno())
        try:
            status, value = receiver.recv()
        except EOFError:
            await asyncio.to_thread(process.join, 10)
            raise ProcessCrashed(f"the media process died (exit code {process.exitcode})") from None
        await asyncio.to_thread(process.join, 10)
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
            process.join(5)
    if status == "error":
        raise value
    return value  # type: ignore[no-any-return]
