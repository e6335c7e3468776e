"""Figures for bench/sync_accuracy.py: viewer positions at common instants against the room."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

GRID_MS = 20.0  # common instants this far apart
MAX_GAP_MS = 100.0  # two samples further apart than this say nothing about the time between
# s: two samples whose positions differ by more than the time between them (at up to 2x) and this
# have a seek between them, finished before the second was taken: nothing lies between them.
JUMP_S = 0.1
SETTLE_S = 2.0  # after an action, this long is convergence, not steady state
HOLD_S = 0.5  # converged: within the threshold and staying there this long
STALL_MS = 100.0  # a playing element whose position stands still this long has stalled
CHANGE_ERRORS_AT_S = (0.3, 0.5, 1.0)  # each viewer's error this long after a change is shown


@dataclass(frozen=True)
class State:
    version: int
    timestamp: float
    playing: bool
    rate: float
    server_time: float  # epoch ms
    user_id: str | None = None

    def position(self, at_ms: float) -> float:
        if not self.playing:
            return self.timestamp
        return self.timestamp + max(0.0, at_ms - self.server_time) / 1000 * self.rate


@dataclass(frozen=True)
class Action:
    kind: str  # play | pause | seek | seek-paused
    state: State
    acted_at: float  # epoch ms when the viewer acted (the state's server_time comes later)


@dataclass
class Track:
    """One viewer's samples: epoch ms (this page's clock, calibrated), currentTime, flags."""

    times: list[float] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    paused: list[bool] = field(default_factory=list)
    seeking: list[bool] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples: list[list[float]]) -> Track:
        """Samples are [perf epoch ms, Date.now(), currentTime, paused, seeking, rate]."""
        # Date.now() truncates to the ms: its mean difference to the page clock (+0.5) maps the
        # page's performance clock onto the system clock to a fraction of a millisecond.
        shift = sum(s[1] + 0.5 - s[0] for s in samples) / len(samples) if samples else 0.0
        track = cls()
        for s in samples:
            track.times.append(s[0] + shift)
            track.positions.append(s[2])
            track.paused.append(bool(s[3]))
            track.seeking.append(bool(s[4]))
        return track

    def at(self, t: float) -> float | None:
        """The position at epoch ms `t`, interpolated between the samples around it."""
        k = bisect.bisect_right(self.times, t) - 1
        if k < 0 or k + 1 >= len(self.times):
            return None
        t0, t1 = self.times[k], self.times[k + 1]
        if t1 - t0 > MAX_GAP_MS or self.seeking[k] or self.seeking[k + 1]:
            return None
        p0, p1 = self.positions[k], self.positions[k + 1]
        if self.jumped(k):
            return None
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    def jumped(self, k: int) -> bool:
        """Whether the position jumped (a seek) between samples k and k + 1."""
        moved = abs(self.positions[k + 1] - self.positions[k])
        return moved > 2 * (self.times[k + 1] - self.times[k]) / 1000 + JUMP_S

    def jump_at(self, t: float) -> float | None:
        """Where interpolating across a jump at `t` would have put the position (else None)."""
        k = bisect.bisect_right(self.times, t) - 1
        if k < 0 or k + 1 >= len(self.times) or not self.jumped(k):
            return None
        t0, t1 = self.times[k], self.times[k + 1]
        p0, p1 = self.positions[k], self.positions[k + 1]
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    def stalls(self, start: float, end: float) -> list[float]:
        """Durations (ms) the position stood still while playing, within [start, end)."""
        found, since = [], None
        for t, p, prev, paused in zip(
            self.times[1:], self.positions[1:], self.positions, self.paused[1:], strict=False
        ):
            if t < start or t >= end:
                continue
            if not paused and p == prev:
                since = since if since is not None else t
            else:
                if since is not None and t - since >= STALL_MS:
                    found.append(t - since)
                since = None
        return found

    def seeks(self, start: float, end: float) -> int:
        """Seeks the page made on its own between start and end (rising edges of `seeking`)."""
        count = 0
        for t, now, before in zip(self.times[1:], self.seeking[1:], self.seeking, strict=False):
            if start <= t < end and now and not before:
                count += 1
        return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
        "n": len(values),
    }


class Room:
    """Every state the server published: the shared position at any instant."""

    def __init__(self, states: list[State]) -> None:
        self.states = sorted(states, key=lambda s: s.version)
        self.times = [s.server_time for s in self.states]

    def position(self, at_ms: float) -> float:
        k = max(0, bisect.bisect_right(self.times, at_ms) - 1)
        return self.states[k].position(at_ms)


def analyse(
    tracks: list[Track], actions: list[Action], states: list[State], end_ms: float, fps: float
) -> dict[str, Any]:
    """Steady spread and error while playing, frames apart, convergence, stalls, own seeks."""
    frame = 1 / fps
    room = Room(states)
    first = actions[0].acted_at if actions else 0.0
    pairwise: list[float] = []
    errors: list[float] = []
    bias: list[list[float]] = [[] for _ in tracks]
    apart = 0
    jumped: list[float] = []  # instants skipped as interpolated across a seek: their pairwise
    stalls: list[float] = []
    seeks = 0
    convergence: dict[str, list[float | None]] = {}
    changes: list[dict[str, Any]] = []
    for i, action in enumerate(actions):
        start = action.state.server_time
        stop = actions[i + 1].acted_at if i + 1 < len(actions) else end_ms
        convergence.setdefault(action.kind, []).append(converge(tracks, room, start, stop, frame))
        changes.append(
            {
                "kind": action.kind,
                "version": action.state.version,
                "each_s": [converge([track], room, start, stop, frame) for track in tracks],
                "error_ms": {
                    str(after): [error_at(track, room, start + after * 1000) for track in tracks]
                    for after in CHANGE_ERRORS_AT_S
                },
            }
        )
        if not action.state.playing:
            continue
        steady_from = start + SETTLE_S * 1000
        for track in tracks:
            stalls.extend(track.stalls(steady_from, stop))
            seeks += track.seeks(steady_from, stop)
        t = steady_from
        while t < stop:
            positions = [track.at(t) for track in tracks]
            across = [track.jump_at(t) for track in tracks]
            if any(a is not None for a in across):
                # What the figures showed before jumps were skipped: one viewer's interpolation
                # between a sample before a seek and one after it, as if it were that far off.
                guess = [a if a is not None else p for a, p in zip(across, positions, strict=True)]
                if all(g is not None for g in guess):
                    known_guess = [g for g in guess if g is not None]
                    jumped.append((max(known_guess) - min(known_guess)) * 1000)
            if all(p is not None for p in positions):
                known = [p for p in positions if p is not None]
                shared = room.position(t)
                pairwise.append((max(known) - min(known)) * 1000)
                for k, p in enumerate(known):
                    errors.append(abs(p - shared) * 1000)
                    bias[k].append((p - shared) * 1000)
                if len({math.floor(p / frame + 1e-6) for p in known}) > 1:
                    apart += 1
            t += GRID_MS
    return {
        "pairwise_ms": summary(pairwise),
        "error_ms": summary(errors),
        "bias_ms": [sum(b) / len(b) if b else math.nan for b in bias],
        "frames_apart": apart / len(pairwise) if pairwise else math.nan,
        "convergence_s": convergence,
        "changes": changes,
        "stalls": {"count": len(stalls), "longest_ms": max(stalls, default=0.0)},
        "across_jumps": {"count": len(jumped), "largest_ms": max(jumped, default=0.0)},
        "own_seeks": seeks,
        # Versions no bench action made: a page echoing what it followed would show up here.
        "extra_versions": len(states) - len({a.state.version for a in actions}) - 1,
        "extras": [
            (s.version, s.user_id, s.playing, round(s.timestamp, 3), round(s.server_time - first))
            for s in states[1:]
            if s.version not in {a.state.version for a in actions}
        ],
    }


def error_at(track: Track, room: Room, at_ms: float) -> float | None:
    """A viewer's error (ms) against the shared position at an instant, if it was sampled then."""
    position = track.at(at_ms)
    return None if position is None else (position - room.position(at_ms)) * 1000


def converge(
    tracks: list[Track], room: Room, start: float, stop: float, threshold: float
) -> float | None:
    """Seconds from the change until every viewer is within `threshold` s and stays so HOLD_S."""
    t, since = start, None
    while t < stop:
        positions = [track.at(t) for track in tracks]
        shared = room.position(t)
        inside = all(p is not None and abs(p - shared) <= threshold for p in positions)
        if inside:
            since = since if since is not None else t
            if t - since >= HOLD_S * 1000:
                return (since - start) / 1000
        else:
            since = None
        t += GRID_MS / 2
    return None
