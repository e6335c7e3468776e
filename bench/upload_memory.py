"""Peak server memory during a streamed 1 GiB upload.

    /work/venv/bin/python bench/upload_memory.py [--mib 1024]

Runs `cowatch serve` on the embedded defaults in a temporary data dir, warms it up with a small
upload, resets the kernel's peak-RSS mark of the server process (/proc/<pid>/clear_refs), sends
one upload of --mib MiB through POST /api/videos/upload (a small real MP4 padded to size, so it
passes the probe and is stored), and prints how far the server's peak RSS (VmHWM) rose.
Target: less than 64 MiB for 1 GiB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media import make_clip  # noqa: E402
from tests.servers import cowatch_serve  # noqa: E402

MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def multipart(boundary: str, clip: bytes, total: int) -> Iterator[bytes]:
    """The form, generated on the fly: the clip, then zero padding up to `total` file bytes."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbig upload\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    yield clip
    padding = bytes(MIB)
    left = total - len(clip)
    while left > 0:
        piece = padding[: min(MIB, left)]
        left -= len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def upload(url: str, token: str, clip: bytes, total: int) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = list(multipart(boundary, b"", 0))
    length = sum(len(part) for part in body) + total
    return httpx.post(
        f"{url}/api/videos/upload",
        content=multipart(boundary, clip, total),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        },
        timeout=600,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cowatch-upload-bench-") as directory:
        work = Path(directory)
        clip = make_clip(work / "clip.mp4", 320, 240).read_bytes()
        env = {
            "COWATCH_DATA_DIR": str(work / "data"),
            "COWATCH_DATABASE_URL": "",
            "COWATCH_REDIS_URL": "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_RATE_LIMIT_ENABLED": "false",
        }
        with cowatch_serve(env, work) as server:
            account = {"email": "b@example.com", "password": "bench password", "username": "bench"}
            httpx.post(f"{server.url}/api/auth/signup", json=account).raise_for_status()
            login = httpx.post(f"{server.url}/api/auth/login", json=account).json()
            token = login["access_token"]
            pid = server.process.pid
            warm = upload(server.url, token, clip, len(clip) + MIB)
            assert warm.status_code == 202, warm.text
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
            before = status_kib(pid, "VmHWM")
            start = time.perf_counter()
            response = upload(server.url, token, clip, args.mib * MIB)
            elapsed = time.perf_counter() - start
            assert response.status_code == 202, response.text
            peak = status_kib(pid, "VmHWM")
            stored = sum(f.stat().st_size for f in (work / "data" / "media").rglob("source"))
    rise = (peak - before) / 1024
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    print(f"upload: {args.mib} MiB in {elapsed:.1f} s ({args.mib / elapsed:.0f} MiB/s), 202")
    print(f"stored sources: {stored / MIB:.0f} MiB")
    print(f"server peak RSS: {before / 1024:.1f} MiB before, {peak / 1024:.1f} MiB after")
    print(f"rise: {rise:.1f} MiB (target < 64 MiB) -> {'PASS' if rise < 64 else 'FAIL'}")


if __name__ == "__main__":
    main()
