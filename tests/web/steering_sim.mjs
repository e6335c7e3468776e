// Closed-loop runs of web/static/js/steering.js against a player modelled on a recorded trace.
//
//   node tests/web/steering_sim.mjs TRACE.json  ->  JSON on stdout (tests/web/test_steering.py)
//
// A trace is what a real page's SyncPlayer recorded in Chromium, one row per steering tick:
// [performance.now() ms, currentTime, drift, room rate, nudge, seek, clock offset ms, jitter ms].
// From it come the room as that page saw it (its clock's wobble included), the element's own
// tick-to-tick jitter and its jumps when playbackRate left or returned to the room's rate. The
// model element starts off by a given error and moves by the controller's rate, those jumps and
// that jitter; a seek lands after the recorded page's seek lag. The jumps grow with the size of the
// rate change as measured in Chromium here: the trace gives what they are for the nudges it made
// (up to 10 %), CHROMIUM what they are beyond that (a pulse after a landing): the 14 pulses of
// 17-29 % in the sync bench's loopback run of 2026-12-02 07:38 left 1.0 at -23.5 ms - 66 ms * n
// (-31 to -45 ms, summed over the ticks they arrived in) and came back at +5 ms + 75 ms * n
// (+17 to +27 ms, mostly in the second tick); the slopes are bench/rate_jumps.py's (1.05 ... 1.5,
// 0.95 ... 0.67 from and back to 1.0 on a bare page).
// Chromium's jump on leaving the rate does not arrive at once: in the traces part of it shows in
// the first tick after the change and the rest (often the larger part) in the second. Each engage
// of the model replays one recorded split, the first part at once and the late part LATE_MS after
// the change, whatever the controller did meanwhile (a nudge let go before it keeps it coming).
//
// Two kinds of runs: the element starts off by an error and is steered from there, or it has just
// landed from a seek off by an error (what a mis-guessed seek lag leaves).
import { readFileSync } from "node:fs";
import { Steering } from "../../web/static/js/steering.js";

const ERRORS = [-1.5, -0.6, -0.2, -0.08, -0.03, -0.012, 0.012, 0.03, 0.08, 0.2, 0.6, 2.5];
const LANDINGS = [-0.15, -0.1, -0.08, -0.06, -0.035, -0.02, 0.02, 0.035, 0.06, 0.08, 0.1, 0.15];
const CHROMIUM = { engage: [-0.0235, -0.066], release: [0.005, 0.075] }; // [s, s per unit of nudge]
const PULSE_RELEASE_FIRST = 0.2; // of a pulse's return jump, in the first tick after
const SEEK_LAG = 0.05;
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
const TRACED = 0.1; // the largest nudge the traces were recorded with
const beyond = (nudge) => Math.sign(nudge) * Math.max(0, Math.abs(nudge) - TRACED);
const chromium = (kind, nudge) => CHROMIUM[kind][0] + CHROMIUM[kind][1] * nudge;

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
  let position = room + initial;
  let nudge = 0;
  let until = null; // a pulse's end: the next tick comes then, as the page's timer brings it
  let late = []; // [when, jump]: parts of engage jumps still to arrive
  let engaged = 0; // how many engages so far: each replays the next recorded split
  if (landed) steering.expectLanding("seek", position, at);
  const out = { initial, landed, errors: [], nudges: [], bands: [], seeks: 0, pulses: 0 };
  for (let k = 0; k < TICKS; k += 1) {
    const step = steps[k % steps.length];
    const { rate, jitter } = step;
    const error = position - room;
    const clockJitter = Number.isFinite(jitter) ? jitter / 1000 : 0;
    const decision = steering.decide({ at, position, error, rate, clockJitter });
    out.errors.push(error);
    out.bands.push(steering.band(clockJitter));
    out.nudges.push(decision.nudge);
    if (decision.until !== undefined) {
      if (until === null && nudge === 0) out.pulses += 1;
      until = decision.until;
    }
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
      const target = room + steering.lags.seek - steering.aimBehind(clockJitter);
      steering.expectLanding("seek", target, at - dt * 1000);
      room += dt * rate + wobble;
      position = target + Math.max(0, dt - SEEK_LAG) * rate;
      nudge = 0;
      late = []; // a seek drops the audio those parts were re-timing
      continue;
    }
    let jump = 0;
    const changed = at - dt * 1000;
    if (nudge === 0 && decision.nudge !== 0) {
      const pulse = beyond(decision.nudge) !== 0;
      const whole = pulse ? chromium("engage", decision.nudge) : engage;
      const [, first, second] = engages[engaged % engages.length] ?? [0, engage, 0];
      engaged += 1;
      const share = first + second === 0 ? 1 : first / (first + second);
      jump = whole * share;
      late.push([changed + LATE_MS, whole - jump]);
    } else if (nudge !== 0 && decision.nudge === 0) {
      if (beyond(nudge) === 0) jump = release;
      else {
        const whole = chromium("release", nudge);
        jump = whole * PULSE_RELEASE_FIRST;
        late.push([changed + LATE_MS, whole - jump]);
      }
    } else if (nudge !== 0 && decision.nudge !== nudge) {
      // Between two rates other than the room's only the re-timing of the buffered audio shows.
      jump = CHROMIUM.engage[1] * (beyond(decision.nudge) - beyond(nudge));
    }
    nudge = decision.nudge;
    const noise = nudge === 0 ? steadyNoise : nudgedNoise.length ? nudgedNoise : steadyNoise;
    room += dt * rate + wobble;
    position += dt * rate * (1 + nudge) + jump + part * (noise.length ? noise[k % noise.length] : 0);
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
