"""How far Chromium's `currentTime` jumps when `playbackRate` changes, per rate.

    python bench/rate_jumps.py [--base 1.0] [--rates 1.05 1.1 1.25 1.5 0.95 0.9 0.75 0.67] [--free]

A bare page plays a generated 30 fps clip with audio (served from a temporary folder, no
Cowatch). A 1 ms sampler records `currentTime` while the rate goes from `--base` to each rate and,
a second later, back. The jump on engaging is where a line of the new rate through the readings
150 ms-1 s after the change meets the change's instant, less where the line of the old rate
through the 350 ms before it does; the same for the release. steering.js carries a plain nudge's
jumps from one rate to another by these slopes (SLOPES). `--free`: with `preservesPitch` off, as
a landing's pulse runs (FREE_DELAY).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURE = """async ([base, rate, free]) => {
  const v = document.getElementById('v');
  v.preservesPitch = !free;
  v.playbackRate = base;
  await new Promise((settled) => setTimeout(settled, 600));
  const s = [];
  const t0 = performance.now();
  let changed = null, released = null;
  await new Promise((done) => {
    const step = () => {
      const now = performance.now();
      s.push([now, v.currentTime]);
      if (changed === null && now - t0 > 400) { v.playbackRate = rate; changed = now; }
      if (released === null && now - t0 > 1400) { v.playbackRate = base; released = now; }
      if (now - t0 > 2400) return done();
      setTimeout(step, 1);
    };
    step();
  });
  return { s, changed, released };
}"""


def meets(points: list[tuple[float, float]], rate: float, at: float) -> float:
    """Where a line of slope `rate` through the readings stands at `at` (median, s)."""
    return statistics.median(p - (t - at) / 1000 * rate for t, p in points)


def jumps(run: dict[str, Any], base: float, rate: float) -> tuple[float, float]:
    """(engage, release) jumps in seconds for one measured run."""
    samples = [(float(t), float(p)) for t, p in run["s"]]
    changed, released = float(run["changed"]), float(run["released"])
    before = [(t, p) for t, p in samples if changed - 350 < t < changed]
    during = [(t, p) for t, p in samples if changed + 150 < t < released]
    after = [(t, p) for t, p in samples if released + 150 < t]
    engage = meets(during, rate, changed) - meets(before, base, changed)
    release = meets(after, base, released) - meets(during, rate, released)
    return engage, release


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=float, default=1.0)
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[1.05, 1.1, 1.25, 1.5, 0.95, 0.9, 0.75, 0.67])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--free", action="store_true", help="with preservesPitch off")
    args = parser.parse_args()
    from tests.browser import chromium
    from tests.media import make_clip

    with tempfile.TemporaryDirectory(prefix="rate-jumps-") as tmp:
        folder = Path(tmp)
        make_clip(folder / "clip.mp4", 320, 240, seconds=60, fps=30)
        (folder / "index.html").write_text('<video id="v" src="clip.mp4" preload="auto"></video>')

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        seen: dict[float, list[tuple[float, float]]] = {rate: [] for rate in args.rates}
        try:
            with chromium() as browser:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                page.wait_for_function("document.getElementById('v').readyState >= 4")
                page.evaluate("document.getElementById('v').play()")
                page.wait_for_timeout(1000)
                for _ in range(args.repeats):
                    for rate in args.rates:
                        run = page.evaluate(MEASURE, [args.base, rate, args.free])
                        seen[rate].append(jumps(run, args.base, rate))
                        if page.evaluate("document.getElementById('v').currentTime") > 50:
                            page.evaluate("document.getElementById('v').currentTime = 1")
                            page.wait_for_timeout(500)
        finally:
            server.shutdown()
    pitch = "pitch let go" if args.free else "pitch kept"
    print(f"from and back to rate {args.base} ({pitch}), median of {args.repeats}:")
    for rate, values in seen.items():
        engage = statistics.median(e for e, _ in values) * 1000
        release = statistics.median(r for _, r in values) * 1000
        print(f"  rate {rate:5.2f}: engage {engage:+6.1f} ms, release {release:+6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
