// Closed-loop runs of web/static/js/steering.js against a player modelled on a recorded trace.
//
//   node tests/web/steering_sim.mjs TRACE.json  ->  JSON on stdout (tests/web/test_steering.py)
//
// A trace is what a real page's SyncPlayer recorded in Chromium, one row per steering tick:
// [performance.now() ms, currentTime, drift, room rate, nudge, seek, clock offset ms, jitter ms].
// From it come the room as that page saw it (its clock's wobble included), the element's own
// tick-to-tick jitter and its jumps when playbackRate left or returned to the room's rate. The
// model element starts off by a given error and moves by the controller's rate, those jumps and
// that jitter; a seek lands after the recorded page's seek lag. The trace gives the jumps for the
// nudges it made (up to 10 %). A landing's pulse lets the pitch go: then Chromium keeps the old
// rate until the audio already buffered has played (FREE_DELAY_MS; a bare page: -3.9 / -16.9 /
// -26.0 ms at 1.05 / 1.2 / 1.35, bench/rate_jumps.py --free) and has no jump of its own.
// Chromium's jump on leaving the rate does not arrive at once: in the traces part of it shows in
// the first tick after the change and the rest (often the larger part) in the second. Each engage
// of the model replays one recorded split, the first part at once and the late part LATE_MS after
// the change, whatever the controller did meanwhile (a nudge let go before it keeps it coming).
//
// Two kinds of runs: the element starts off by an error and is steered from there, or it has just
// landed from a seek off by an error (what a mis-guessed seek lag leaves). A landed element first
// stands still at its target for STAND_MS after the seek was made (its lag, then Chromium stands a
// while after `seeked`: about 100 ms on a bare page; the bench's pages were still standing there at
// the first tick 200 ms after the seek), and is off by the error once it moves: the controller
// must not judge it standing.
import { readFileSync } from "node:fs";
import { Steering } from "../../web/static/js/steering.js";

const ERRORS = [-1.5, -0.6, -0.2, -0.08, -0.03, -0.012, 0.012, 0.03, 0.08, 0.2, 0.6, 2.5];
const LANDINGS = [-0.15, -0.1, -0.08, -0.06, -0.035, -0.02, 0.02, 0.035, 0.06, 0.08, 0.1, 0.15];
const FREE_DELAY_MS = 75;
const SEEK_LAG = 0.05;
const STAND_MS = 250;
const LATE_MS = 150; // the second tick after a change (at 100 ms a tick) sees the late part
const rows = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tick = (r) => ({
  at: r[0],
  position: r[1],
  drift: r[2],
  rate: r[3],
  nudge: r[4],
  seek: r[5],
  jitter: r[7],
});
const ticks = rows.map(tick);

// What the element did on its own.
const steadyNoise = [];
const nudgedNoise = [];
const engages = []; // [nudge, first tick's part, second tick's part]
const releases = [];
const SETTLING = 5; // ticks after the room jumped (a seek, a start) are landing, not noise
let settled = 0;
let engaged = null; // the engage whose late part the next residual is
for (let k = 2; k < ticks.length; k += 1) {
  const [before, prev, now] = [ticks[k - 2], ticks[k - 1], ticks[k]];
  const dt = (now.at - prev.at) / 1000;
  const roomMoved = now.position - now.drift - (prev.position - prev.drift) - dt * now.rate;
  settled = Math.abs(roomMoved) > 0.02 || prev.seek !== null || dt > 1 ? 0 : settled + 1;
  const late = engaged;
  engaged = null;
  const residual = now.position - (prev.position + dt * prev.rate * (1 + prev.nudge));
  // The tick after an engage holds that engage's late part, settled or not: never noise (nor a
  // release's jump alone, when the nudge ended there).
  const second = ticks[k - 3]?.nudge === 0 && before.nudge !== 0;
  if (settled < SETTLING || Math.abs(residual) > 0.05) continue; // landing, or a stall
  if (before.nudge === 0 && prev.nudge !== 0) {
    engaged = [prev.nudge, residual];
  } else if (second) {
    if (late && prev.nudge !== 0) engages.push([...late, residual]);
  } else if (before.nudge !== 0 && prev.nudge === 0) releases.push([before.nudge, residual]);
  else if (prev.nudge === 0) steadyNoise.push(residual);
  else nudgedNoise.push(residual);
}
const median = (xs, fallback) => {
  if (!xs.length) return fallback;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};
const engage = median(engages.map(([, first, second]) => first + second), -0.022);
const release = median(releases.map(([, jump]) => jump), 0.002);

// How the room moved as the page saw it, tick by tick, where it moved steadily (its clock's
// wobble included): replayed over and over for as long as a run needs.
const steps = [];
for (let k = 1; k < ticks.length; k += 1) {
  const dt = (ticks[k].at - ticks[k - 1].at) / 1000;
  const room = (t) => t.position - t.drift;
  const wobble = room(ticks[k]) - room(ticks[k - 1]) - dt * ticks[k].rate;
  if (ticks[k].seek === null && ticks[k - 1].seek === null && dt < 1 && Math.abs(wobble) < 0.02) {
    steps.push({ dt, wobble, rate: ticks[k].rate, jitter: ticks[k].jitter });
  }
}
const TICKS = 400;

function run(initial, { landed = false } = {}) {
  const steering = new Steering();
  let at = 0;
  let room = 100;
  let position = room + initial + (landed ? STAND_MS / 1000 : 0);
  const standUntil = landed ? STAND_MS : 0;
  let nudge = 0;
  let until = null; // a pulse's end: the next tick comes then, as the page's timer brings it
  let late = []; // [when, jump]: parts of engage jumps still to arrive
  let engaged = 0; // how many engages so far: each replays the next recorded split
  let free = false; // the rate in force is a pulse's, with the pitch let go
  if (landed) steering.expectLanding("seek", position, at);
  const out = { initial, landed, errors: [], nudges: [], bands: [], seeks: 0, pulses: 0 };
  for (let k = 0; k < TICKS; k += 1) {
    const step = steps[k % steps.length];
    const { rate, jitter } = step;
    const error = position - room;
    const clockJitter = Number.isFinite(jitter) ? jitter / 1000 : 0;
    const decision = steering.decide({ at, position, error, rate, clockJitter });
    if (at >= standUntil) {
      // (while standing it is off by more than it will be: what is judged is where it moves from)
      out.errors.push(error);
      out.bands.push(steering.band(clockJitter));
      out.nudges.push(decision.nudge);
    }
    if (decision.until !== undefined) {
      if (nudge === 0) out.pulses += 1; // (re-timed while it runs)
      until = decision.until;
    } else if (decision.next !== undefined) until = decision.next;
    // The next tick: the pulse's timer brings it early when this decision (re-)timed its end.
    let { dt } = step;
    if (until !== null && until - at < dt * 1000) {
      dt = Math.max(0, until - at) / 1000;
      until = null;
    }
    const part = step.dt > 0 ? dt / step.dt : 1;
    const wobble = step.wobble * part;
    at += dt * 1000;
    if (decision.seek) {
      out.seeks += 1;
      const target = room + steering.lags.seek;
      steering.expectLanding("seek", target, at - dt * 1000);
      room += dt * rate + wobble;
      position = target + Math.max(0, dt - SEEK_LAG) * rate;
      nudge = 0;
      late = []; // a seek drops the audio those parts were re-timing
      continue;
    }
    let jump = 0;
    const changed = at - dt * 1000;
    if (decision.nudge !== nudge && (free || decision.keepPitch === false)) {
      // Pitch free: the old rate goes on until the buffered audio has played, then the new one.
      const whole = (-(decision.nudge - nudge) * rate * FREE_DELAY_MS) / 1000;
      jump = whole * Math.min(1, (dt * 1000) / FREE_DELAY_MS);
      late.push([changed + FREE_DELAY_MS, whole - jump]);
    } else if (nudge === 0 && decision.nudge !== 0) {
      const [, first, second] = engages[engaged % engages.length] ?? [0, engage, 0];
      engaged += 1;
      const share = first + second === 0 ? 1 : first / (first + second);
      jump = engage * share;
      late.push([changed + LATE_MS, engage - jump]);
    } else if (nudge !== 0 && decision.nudge === 0) {
      jump = release;
    }
    // Between two plain nudges (turning round) only the re-timing of the buffered audio shows,
    // under 7 ms at these rates: not modelled.
    if (decision.nudge !== nudge) free = decision.keepPitch === false;
    nudge = decision.nudge;
    // A pulse with the pitch let go reads as steadily as the room's rate (the bench's traces).
    const plain = nudge === 0 || free;
    const noise = plain ? steadyNoise : nudgedNoise.length ? nudgedNoise : steadyNoise;
    room += dt * rate + wobble;
    const moved = dt - Math.max(0, Math.min(at, standUntil) - (at - dt * 1000)) / 1000;
    const own = noise.length ? noise[k % noise.length] : 0;
    position += moved * rate * (1 + nudge) + jump + part * own;
    for (const [when, size] of late) if (when <= at) position += size;
    late = late.filter(([when]) => when > at);
  }
  return out;
}

process.stdout.write(
  JSON.stringify({
    engage,
    release,
    engages: engages.length,
    noise: steadyNoise.length,
    ticks: steps.length,
    runs: ERRORS.map((e) => run(e)),
    landings: LANDINGS.map((e) => run(e, { landed: true })),
  }),
);
