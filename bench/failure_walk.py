"""/healthz while transcodes fail on a store of many files (issue 10, item 9).

    .venv/bin/python bench/failure_walk.py [--files 60000] [--rounds 3] [--failures 4] [--root DIR]

Fills an embedded server's media dir with `--files` objects (three per video), starts
`cowatch serve` on it, then in interleaved rounds polls /healthz back to back:
  quiet      nothing else happening
  failing    while `--failures` truncated uploads are probed, transcoded and fail
A failure cleans its video's prefix; it must not walk the store on the event loop. For scale,
the bench also times one walk of the whole media dir (what the old `_fail` ran on the loop).
Prints the /healthz latency (median, p99, max) per round and the failing/quiet ratio of max.
`--root` runs the server from another checkout (e.g. `git archive` of an older commit), to
compare with the code before the fix on the same machine and load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, wait_healthy  # noqa: E402

PASSWORD = "a long and unusual passphrase 7"


def fill(media: Path, files: int) -> None:
    for _ in range(files // 3):
        directory = media / "videos" / str(uuid.uuid4())
        directory.mkdir(parents=True)
        for name in ("source", "240p.mp4", "thumbnail.jpg"):
            (directory / name).write_bytes(b"x")


def walk_ms(media: Path) -> float:
    started = time.perf_counter()
    count = sum(len(files) for _, _, files in os.walk(media))
    assert count > 0
    return (time.perf_counter() - started) * 1000


def truncated_clip(path: Path) -> bytes:
    from tests.media import make_clip

    data = make_clip(path, 320, 240, seconds=2).read_bytes()
    return data[: len(data) // 2]


class Poller(threading.Thread):
    """GET /healthz back to back; latencies in ms while `running` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.running = threading.Event()
        self.stop = threading.Event()
        self.samples: list[float] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                self.running.wait(0.1)
                if not self.running.is_set():
                    continue
                started = time.perf_counter()
                assert client.get(f"{self.url}/healthz").status_code == 200
                self.samples.append((time.perf_counter() - started) * 1000)

    def window(self) -> list[float]:
        self.samples = []
        self.running.set()
        return self.samples

    def close(self) -> list[float]:
        self.running.clear()
        return self.samples


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(samples):5d} median={statistics.median(samples):6.2f} ms "
        f"p99={p99:7.2f} ms max={ordered[-1]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--failures", type=int, default=4)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cowatch-bench-walk-") as tmp:
        data = Path(tmp) / "data"
        fill(data / "media", args.files)
        print(f"store: {args.files} files; one walk of the whole media dir: "
              f"{walk_ms(data / 'media'):.0f} ms")  # fmt: skip
        clip = truncated_clip(Path(tmp) / "clip.mp4")
        port = free_port()
        env = {
            "COWATCH_DATA_DIR": str(data),
            "COWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "COWATCH_RATE_LIMIT_ENABLED": "false",
            "COWATCH_LOG_LEVEL": "error",
            "COWATCH_DATABASE_URL": "",
            "COWATCH_REDIS_URL": "",
            "COWATCH_STORAGE_URL": "",
        }
        with (Path(tmp) / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--port", str(port)],
                cwd=args.root,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}"
        try:
            account = {"email": "b@example.com", "password": PASSWORD, "username": "bencher"}
            httpx.post(f"{url}/api/auth/signup", json=account).raise_for_status()
            token = httpx.post(f"{url}/api/auth/login", json=account).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            poller = Poller(url)
            poller.start()
            quiet_max, failing_max = [], []
            for number in range(1, args.rounds + 1):
                poller.window()
                time.sleep(3)  # a quiet window of fixed length, for the baseline
                quiet = list(poller.close())
                ids = []
                poller.window()
                with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                    for _ in range(args.failures):
                        response = client.post(
                            "/api/videos/upload",
                            data={"title": "truncated"},
                            files={"file": ("c.mp4", clip, "video/mp4")},
                        )
                        assert response.status_code == 202, response.text
                        ids.append(response.json()["id"])
                    for video_id in ids:
                        while client.get(f"/api/videos/{video_id}").json()["status"] != "FAILED":
                            time.sleep(0.1)
                failing = list(poller.close())
                quiet_max.append(max(quiet))
                failing_max.append(max(failing))
                print(f"round {number} quiet   {figures(quiet)}")
                print(f"round {number} failing {figures(failing)}  ({len(ids)} failures)")
            poller.stop.set()
            ratio = statistics.median(failing_max) / statistics.median(quiet_max)
            print(f"median max latency: failing/quiet = {ratio:.2f}x")
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
