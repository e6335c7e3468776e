"""Sync accuracy: how close real Chromium viewers of one video stay to the shared position.

    python bench/sync_accuracy.py [--viewers 2 5] [--networks loopback netem]
                                  [--rooms public party] [--rounds 2] [--steady 8]
                                  [--delay-ms 50 --jitter-ms 10 --loss 0.01]

`cowatch serve` (embedded defaults) gets a generated 30 fps clip; N browser contexts of Debian's
Chromium (tests/browser.py's launcher, no download) open /watch/{id} (`public`: the video's public
room), or a watch party's invite link /p/{code} (`party`: the first viewer creates it, UNLISTED,
control EVERYONE, and every viewer joins with its account; a playing change waits at the ready
barrier and starts at the party's `effective_at`, which is then the change's stamp). An in-page
sampler records `video.currentTime` every 20 ms with the page's clock (performance.timeOrigin +
now(), calibrated against Date.now()); the bench interpolates every viewer to common instants 20 ms
apart and compares them with each other and with the shared position, computed from every state
the server published (a /ws subscription of the bench's own). Viewers act in turn as people do:
seek while paused, play, seek while playing, pause, seek paused, play, seek back, pause; each round
repeats that.

Printed per run: steady (from 2 s after a change until the next) p50/p95/max of the largest
pairwise difference and of each viewer's |error| against the shared position, each viewer's mean
signed error, how often the screens showed different frames, convergence (seconds until every
viewer is within one frame of the shared position and stays there 0.5 s) after play, pause and
seek, whether paused viewers show identical frames (currentTime and a hash of the drawn frame),
stalls (a playing position standing still >= 100 ms) and seeks the pages made on their own in steady
state.

Networks: `loopback` (127.0.0.1) and `netem`: the server in one network namespace, the bench and
its browsers in another, joined by an emulated link (bench/netem.py: delay ± jitter each way, loss),
all created here and removed at the end. Needs root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import error_lines, free_port, start, start_cowatch  # noqa: E402
from bench.sync_stats import Action, State, Track, analyse  # noqa: E402

FPS = 30
CLIP_S = 60
VIDEO = "document.getElementById('video')"
SAMPLER = """() => {
  const v = document.getElementById('video');
  const bench = (window.__bench = { samples: [] });
  if (window.cowatch?.player) window.cowatch.player.trace = [];
  if (window.cowatch?.player) window.cowatch.player.events = [];
  bench.timer = setInterval(() => bench.samples.push([
    performance.timeOrigin + performance.now(), Date.now(), v.currentTime,
    v.paused ? 1 : 0, v.seeking ? 1 : 0, v.playbackRate]), 20);
}"""
COLLECT = "() => { clearInterval(window.__bench.timer); return window.__bench.samples; }"
FRAME = """() => {
  const v = document.getElementById('video');
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 2166136261;
  for (let i = 0; i < data.length; i += 4) {
    hash = Math.imul(hash ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619);
  }
  return [v.currentTime, v.paused, hash >>> 0];
}"""
PAGE_CLOCK = """() => { const c = window.cowatch?.clock; const p = window.cowatch?.player;
  const jitter = p?.clockError ? p.clockError() : Number.isFinite(c?.jitter) ? c.jitter / 1000 : 0;
  return { offset: c?.offset, roundTrip: c?.roundTrip, learned: p?.steering?.learned(),
  band: p?.steering?.band(jitter), parts: p?.steering && ((st) => {
    const rms = (xs) => Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / Math.max(1, xs.length));
    const med = (xs) => [...xs].map(Math.abs).sort((a, b) => a - b)[xs.length >> 1] ?? 0;
    return { noiseRms: rms(st.noise), noiseMed: med(st.noise), engage: st.offsets.engage,
      release: st.offsets.release, clock: jitter }; })(p.steering),
  indicator: document.getElementById('sync-indicator')?.textContent }; }"""


def scenario(round_: int, steady: float) -> list[tuple[int, str, float | None, float]]:
    """(viewer index: 0 or 1, kind, seek target, seconds to watch afterwards) for one round."""
    off = 0.137 * round_  # every round lands on other frames
    paused = 2.5
    return [
        (0, "seek-paused", 2.21 + off, paused),
        (0, "play", None, steady),
        (1, "seek", 25.37 + off, steady),
        (0, "pause", None, paused),
        (1, "seek-paused", 40.53 + off, paused),
        (0, "play", None, steady),
        (1, "seek", 12.29 + off, steady),
        (0, "pause", None, paused),
    ]


def descendants_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process under this one: {pid: (command name, seconds)}."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    seen: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        fields = rest.split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        seen[pid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    mine, changed = {os.getpid()}, True
    while changed:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        changed = bool(more)
        mine |= more
    return {pid: seen[pid] for pid in mine - {os.getpid()} if pid in seen}


def cpu_use(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
            seconds: float) -> dict[str, float]:  # fmt: skip
    """Cores used between two snapshots, browsers apart from the rest."""
    use = {"browsers": 0.0, "other": 0.0}
    for pid, (name, cpu) in after.items():
        spent = cpu - before.get(pid, (name, 0.0))[1]
        use["browsers" if "chrom" in name.lower() else "other"] += spent / seconds
    return use


def party_state(m: dict[str, Any]) -> tuple[State, bool] | None:
    """A party frame's playhead as the shared position (held while WAITING) and whether it is
    WAITING; None for frames without one."""
    if m.get("type") == "party:snapshot":
        p = m.get("playback") or (m.get("party") or {}).get("playback")
    elif m.get("type") == "party:playback":
        p = m
    else:
        return None
    if not p:
        return None
    playing = bool(p["playing"]) and p["state"] == "PLAYING"
    state = State(int(p["version"]), float(p["timestamp"]), playing, float(p.get("rate") or 1),
                  float(p["server_time"]), p.get("user_id"))  # fmt: skip
    return state, p["state"] == "WAITING"


class Listener(threading.Thread):
    """The bench's own /ws subscription: every state the server publishes, in order (a party's
    WAITING states too: its position is held there until the barrier lets go)."""

    def __init__(self, ws_url: str, token: str, video_id: str, party_id: str | None) -> None:
        super().__init__(name="states", daemon=True)
        self.url, self.token, self.video_id = f"{ws_url}/ws", token, video_id
        self.party_id = party_id
        self.states: dict[int, State] = {}
        self.waiting: set[int] = set()
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"}
        with connect(self.url, additional_headers=headers) as socket:
            if self.party_id:
                socket.send(json.dumps({"type": "party:subscribe", "party_id": self.party_id}))
            else:
                socket.send(json.dumps({"type": "video:subscribe", "video_id": self.video_id}))
            while not self.done.is_set():
                try:
                    m = json.loads(socket.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if m.get("type") in ("video:state", "video:timestamp_updated"):
                    self.states[int(m["version"])] = State(
                        int(m["version"]), float(m["timestamp"]), bool(m["playing"]),
                        float(m.get("rate") or 1), float(m["server_time"]), m.get("user_id"),
                    )  # fmt: skip
                    self.ready.set()
                elif (found := party_state(m)) is not None:
                    state, waiting = found
                    # The barrier lets go in the same version: PLAYING from `server_time`
                    # (the effective moment) replaces WAITING, whose position it holds till then.
                    if waiting:
                        self.waiting.add(state.version)
                    else:
                        self.waiting.discard(state.version)
                    self.states[state.version] = state
                    self.ready.set()
                elif m.get("type") == "error":
                    print(f"    /ws error: {m}", flush=True)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)

    def newest(self) -> int:
        return max(self.states, default=-1)

    def after(self, version: int, timeout: float = 20) -> State | None:
        """The first settled state after `version` (a party's barrier let go)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            newest = self.newest()
            if newest > version and newest not in self.waiting:
                return self.states[newest]
            time.sleep(0.01)  # another thread's socket: poll with a deadline
        return None


def wait_healthy(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # a server in another namespace coming up
    raise RuntimeError(f"{url} did not come up")


def note_console(into: list[str], name: str, message: Any) -> None:
    if message.type in ("warning", "error"):
        into.append(f"{name}: {message.text}")


def act(page: Any, kind: str, target: float | None) -> None:
    if kind == "play":
        page.evaluate(f"{VIDEO}.play()")
    elif kind == "pause":
        page.evaluate(f"{VIDEO}.pause()")
    else:
        page.evaluate(f"{VIDEO}.currentTime = {target}")


def measure(
    url: str, counts: list[int], rounds: int, steady: float, clip: Path, rooms: list[str]
) -> dict[str, Any]:
    """Set-up, browsers, the scenario: all that talks to the server, run beside the viewers."""
    from tests.browser import api_signup, await_transcoded, chromium, upload_clip

    wait_healthy(url)
    ws_url = url.replace("http://", "ws://", 1)
    users = [api_signup(url, f"viewer{i}_{os.getpid()}") for i in range(max(counts))]
    names = [f"viewer{i}_{os.getpid()}" for i in range(max(counts))]
    video_id = upload_clip(url, users[0][1], clip, "Sync accuracy")
    await_transcoded(ws_url, users[0][1], video_id, timeout=300)
    results: dict[str, Any] = {}
    with chromium() as browser:
        for room in rooms:
            for count in counts:
                key = str(count) if room == "public" else f"{count}-party"
                results[key] = run(
                    browser, url, video_id, users[:count], names, rounds, steady, room
                )
    return results


def create_party(url: str, token: str, video_id: str) -> tuple[str, str]:
    """A party for the bench's viewers: its id and invite code."""
    response = httpx.post(
        f"{url}/api/parties",
        json={"video_id": video_id, "visibility": "UNLISTED", "control": "EVERYONE"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    party = response.json()
    return party["id"], party["code"]


def run(
    browser: Any, url: str, video_id: str, users: list[tuple[str, str, str]], names: list[str],
    rounds: int, steady: float, room: str,
) -> dict[str, Any]:  # fmt: skip
    party = create_party(url, users[0][1], video_id) if room == "party" else None
    ws_url = url.replace("http://", "ws://", 1)
    listener = Listener(ws_url, users[0][1], video_id, party[0] if party else None)
    listener.start()
    if not listener.ready.wait(30):
        raise RuntimeError("the /ws subscription sent no state")
    contexts, pages = [], []
    console: list[str] = []
    for (_email, token, user_id), name in zip(users, names[: len(users)], strict=True):
        context = browser.new_context(bypass_csp=True, viewport={"width": 800, "height": 600})
        context.add_cookies([{"name": "Authentication", "value": token, "url": url}])
        user = json.dumps({"id": user_id, "username": name})
        context.add_init_script(
            f"localStorage.setItem('cowatch.token', {json.dumps(token)});"
            f"localStorage.setItem('cowatch.user', {json.dumps(user)});"
        )
        page = context.new_page()
        page.on("console", partial(note_console, console, name))
        page.on("pageerror", lambda error, name=name: console.append(f"{name}: {error}"))
        if party:  # the invite link: an account joins at once and lands on the watch page
            page.goto(f"{url}/p/{party[1]}")
            page.wait_for_url(f"**/watch/{video_id}?party={party[0]}", timeout=60_000)
        else:
            page.goto(f"{url}/watch/{video_id}")
        page.wait_for_function(
            "document.getElementById('sync-indicator')?.dataset.state === 'in-sync'"
            f" && {VIDEO}.readyState >= 3",
            timeout=60_000,
        )
        contexts.append(context)
        pages.append(page)
    for page in pages:
        page.evaluate(SAMPLER)
    cpu_before, started, load_before = descendants_cpu(), time.monotonic(), os.getloadavg()[0]
    actions: list[Action] = []
    frames: list[dict[str, Any]] = []
    unshared: list[str] = []
    for round_ in range(rounds):
        for who, kind, target, wait in scenario(round_, steady):
            before = listener.newest()
            acted_at = time.time() * 1000
            act(pages[who % len(pages)], kind, target)
            state = listener.after(before)
            if state is None:  # the page did not share it: counted, and the round goes on
                unshared.append(kind)
                continue
            actions.append(Action(kind, state, acted_at))
            time.sleep(wait)  # the measurement window itself
            if not state.playing:
                shown = [page.evaluate(FRAME) for page in pages]
                frames.append({"kind": kind, "frames": shown,
                               "identical": len({(s[0], s[2]) for s in shown}) == 1})  # fmt: skip
    end_ms = time.time() * 1000
    cpu = cpu_use(cpu_before, descendants_cpu(), time.monotonic() - started)
    cpu["load_before"], cpu["load_after"] = load_before, os.getloadavg()[0]
    samples = [page.evaluate(COLLECT) for page in pages]
    tracks = [Track.from_samples(x) for x in samples]
    traces = [page.evaluate("() => window.cowatch?.player?.trace ?? null") for page in pages]
    events = [page.evaluate("() => window.cowatch?.player?.events ?? null") for page in pages]
    clocks = [page.evaluate(PAGE_CLOCK) for page in pages]
    for context in contexts:
        context.close()
    listener.stop()
    states = [s for s in listener.states.values() if s.version >= actions[0].state.version - 1]
    figures = analyse(tracks, actions, states, end_ms, FPS)
    figures["paused_mismatches"] = [f for f in frames if not f["identical"]]
    figures["paused_frames"] = {
        "identical": sum(f["identical"] for f in frames),
        "checks": len(frames),
        "spread_ms": max(
            (max(s[0] for s in f["frames"]) - min(s[0] for s in f["frames"])) * 1000 for f in frames
        ),
    }
    figures["clocks"] = clocks
    figures["cpu"] = cpu
    figures["unshared"] = unshared
    figures["timeline"] = [
        (
            a.kind,
            a.state.version,
            a.state.playing,
            a.state.timestamp,
            a.acted_at - actions[0].acted_at,
        )
        for a in actions
    ]
    figures["users"] = [u[2] for u in users]
    figures["console"] = console
    figures["traces"] = traces
    figures["events"] = events
    figures["samples"] = samples
    figures["states"] = [list(dataclasses.astuple(s)) for s in states]
    return figures


def show(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def report_changes(f: dict[str, Any]) -> None:
    """Per change: the viewer who made it, when each viewer converged, errors soon after."""
    for change, (_kind, _version, _playing, _ts, at_ms) in zip(
        f["changes"], f["timeline"], strict=True
    ):
        errors = " ".join(
            f"{after}s [" + " ".join(show(e, "+.0f") for e in values) + "]"
            for after, values in change["error_ms"].items()
        )
        print(
            f"      {change['kind']:11} v{change['version']:<3} at {at_ms / 1000:5.1f} s | "
            "converged s [" + " ".join(show(c, ".2f") for c in change["each_s"]) + "] | "
            f"error ms {errors}"
        )


def report(network: str, count: str, f: dict[str, Any], changes: bool = False) -> None:
    pw, er = f["pairwise_ms"], f["error_ms"]
    conv = {
        kind: max((c for c in values if c is not None), default=float("nan"))
        for kind, values in f["convergence_s"].items()
    }
    missed = sum(c is None for values in f["convergence_s"].values() for c in values)
    pf = f["paused_frames"]
    print(
        f"{network:8} {count.removesuffix('-party'):>2} viewers"
        f"{' in a party' if count.endswith('-party') else ''} | "
        f"pairwise p50 {pw['p50']:5.1f} p95 {pw['p95']:5.1f} "
        f"max {pw['max']:6.1f} ms | |error| p50 {er['p50']:5.1f} p95 {er['p95']:5.1f} "
        f"max {er['max']:6.1f} ms | frames apart {f['frames_apart']:.0%} (n={pw['n']})"
    )
    print(
        "    bias (mean signed error) ms: "
        + ", ".join(f"{b:+.1f}" for b in f["bias_ms"])
        + " | convergence max s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in conv.items())
        + (f" ({missed} never converged)" if missed else "")
    )
    print(
        f"    paused: identical frames {pf['identical']}/{pf['checks']}, "
        f"currentTime spread max {pf['spread_ms']:.2f} ms | stalls {f['stalls']['count']} "
        f"(longest {f['stalls']['longest_ms']:.0f} ms) | own seeks in steady state "
        f"{f['own_seeks']} | versions no viewer made {f['extra_versions']} | page clocks: "
        + ", ".join(f"{c['offset']:+.1f}/{c['roundTrip']:.1f}" for c in f["clocks"])
        + " ms offset/round trip"
    )
    jumps = f.get("across_jumps")
    if jumps and jumps["count"]:
        print(
            f"    instants skipped, one sample before a seek and one after: {jumps['count']} "
            f"(interpolated, their pairwise would have been up to {jumps['largest_ms']:.1f} ms)"
        )
    if f.get("console"):
        print(f"    page warnings and errors: {len(f['console'])}, first: {f['console'][:3]}")
    if f.get("extras"):
        acts = [(a[1], a[0], round(a[4])) for a in f.get("timeline", [])]
        print(
            f"    versions no viewer made (version, user, playing, at, ms): {f['extras']}; {acts}"
        )
    if f.get("unshared"):
        print(f"    actions that never reached the server: {f['unshared']}")
    for mismatch in f.get("paused_mismatches", []):
        print(f"    not identical after {mismatch['kind']}: {mismatch['frames']}")
    learned = [c.get("learned") for c in f["clocks"] if c.get("learned")]
    if learned:
        print(
            "    learned lags ms (seek/start/play/fetch) and pulse offsets ms (engage/release): "
            + "; ".join(
                "/".join(f"{v * 1000:.0f}" for v in x["lags"].values())
                + f" {x['offsets']['engage'] * 1000:+.0f}/{x['offsets']['release'] * 1000:+.0f}"
                for x in learned
            )
        )
    print("    indicators: " + " | ".join(str(c.get("indicator")) for c in f["clocks"]))
    bands = [c["band"] * 1000 for c in f["clocks"] if c.get("band") is not None]
    parts = [c["parts"] for c in f["clocks"] if c.get("parts")]
    if parts:
        print(
            "    band parts ms (tick noise rms/median, pulse offsets engage/release, clock): "
            + "; ".join("/".join(f"{v * 1000:.1f}" for v in x.values()) for x in parts)
        )
    cpu = f["cpu"]
    print(
        "    dead bands ms: " + ", ".join(f"{b:.1f}" for b in bands)
        + f" | CPU while measured: browsers {cpu['browsers']:.2f} cores, other children "
        f"{cpu['other']:.2f} cores (of {os.cpu_count()}); load {cpu['load_before']:.1f} -> "
        f"{cpu['load_after']:.1f}"
    )  # fmt: skip
    if changes:
        report_changes(f)


def serve_env(data: Path, public_url: str) -> dict[str, str]:
    env = {"COWATCH_DATA_DIR": str(data), "COWATCH_PUBLIC_URL": public_url}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    return {**env, "COWATCH_LOG_LEVEL": "warning"}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def loopback(args: argparse.Namespace, clip: Path, work: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "serve-loopback.log"
    server = start_cowatch(port, serve_env(work / "loopback", url), log)
    try:
        return measure(url, args.viewers, args.rounds, args.steady, clip, args.rooms)
    finally:
        stop(server)
        check_log(log)


def netem(args: argparse.Namespace, clip: Path, work: Path) -> dict[str, Any]:
    from bench.netem import emulated_link

    with emulated_link(delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, loss=args.loss) as link:
        url = f"http://{link.server_ip}:8000"
        log = work / "serve-netem.log"
        serve = [sys.executable, "-m", "cli", "serve", "--host", link.server_ip, "--port", "8000"]
        server = start(link.exec_in(link.server_ns, serve), serve_env(work / "netem", url), log)
        out = work / "netem.json"
        client = [sys.executable, str(Path(__file__).resolve()), "--client", url, "--out", str(out),
                  "--clip", str(clip), "--rounds", str(args.rounds), "--steady", str(args.steady),
                  "--viewers", *map(str, args.viewers), "--rooms", *args.rooms]  # fmt: skip
        try:
            subprocess.run(link.exec_in(link.client_ns, client), check=True, cwd=ROOT)
        finally:
            stop(server)
            print(
                f"    link: to server {link.to_server.forwarded} packets "
                f"({link.to_server.dropped} dropped), to viewers {link.to_client.forwarded} "
                f"({link.to_client.dropped} dropped)"
            )
            check_log(log)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def save_traces(folder: Path | None, network: str, count: str, traces: list[Any]) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for viewer, trace in enumerate(traces):
        if trace:
            path = folder / f"{network}-{count}-viewer{viewer}.json"
            path.write_text(json.dumps([[round(x, 6) if isinstance(x, float) else x for x in row]
                                        for row in trace]))  # fmt: skip


def check_log(log: Path) -> None:
    errors = error_lines(log)
    if errors:
        print(f"    server log: {len(errors)} ERROR lines, first: {errors[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--networks", nargs="+", default=["loopback", "netem"],
                        choices=["loopback", "netem"])  # fmt: skip
    parser.add_argument("--rooms", nargs="+", default=["public", "party"],
                        choices=["public", "party"])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steady", type=float, default=8.0, help="seconds watched after play/seek")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="one way")
    parser.add_argument("--jitter-ms", type=float, default=10.0, help="standard deviation")
    parser.add_argument("--loss", type=float, default=0.01, help="fraction of packets, each way")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--traces",
        type=Path,
        help="write each page's steering ticks, element events, changes shared and their answers,"
        " its 20 ms samples, and the states the server published here",
    )
    parser.add_argument("--changes", action="store_true", help="print every change's convergence")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the viewers' side
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        figures = measure(
            args.client, args.viewers, args.rounds, args.steady, args.clip, args.rooms
        )
        args.out.write_text(json.dumps(figures))
        return 0
    # SIGTERM unwinds like Ctrl-C, so the namespaces and servers are removed either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"sync accuracy, {os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    from tests.media import make_clip

    everything: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sync-accuracy-") as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip.mp4", 320, 240, seconds=CLIP_S, fps=FPS)
        for network in args.networks:
            shape = loopback if network == "loopback" else netem
            everything[network] = shape(args, clip, work)
            for count, figures in everything[network].items():
                report(network, count, figures, args.changes)
                save_traces(args.traces, network, count, figures.pop("traces"))
                save_traces(args.traces, network, f"{count}-events", figures.pop("events"))
                save_traces(args.traces, network, f"{count}-samples", figures.pop("samples"))
                save_traces(args.traces, network, f"{count}-states", [figures.pop("states")])
            print(f"    load after {network}: {os.getloadavg()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
