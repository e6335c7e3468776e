// The sync engine's controller: how far off a playing element may be and what to do about it.
// No DOM here, so it can be checked on its own (tests/web/test_steering.py runs it under node).
//
// Errors are in seconds, positive when the element is ahead of the room. An error outside the
// dead band is removed by one timed pulse of playbackRate, a large one by a seek. Everything the
// element itself adds is measured on this page and compensated rather than tolerated:
// - `lags`: how long a seek (while playing), a seek-and-start (from paused), a plain play() and a
//   seek to where nothing is buffered yet keep the element from advancing; seeks aim that far
//   ahead and a viewer's own changes are sent so.
// - a pulse lets the pitch go: then Chromium has no jump of its own, the new rate simply takes
//   effect once the audio already buffered has played (FREE_DELAY), and the element never moves
//   away from the room first. With the pitch kept, leaving rate 1.0 for 1 + n moves currentTime
//   by about -20 ms - 66 ms * n (Chromium's time-stretcher starts with a 20 ms window and
//   re-times the audio it has buffered; bench/rate_jumps.py): an element behind the room fell
//   further behind before it caught up, and one ahead by less than that jump could not be steered
//   without overshooting, so it was left there. How far this page's pulses' delays are from
//   FREE_DELAY's is learned (`offsets`). A pulse is proportional to the error (5 % for 200 ms
//   mends 10 ms), so a small correction is a small, short change of pitch.
//   A jump arrives over two ticks, not one: part in the first tick after the change and the rest
//   in the second. It is learned as all the element did over JUMP_MS, and until then what has not
//   arrived yet counts as part of the error.
// - the dead band: a few standard deviations of the measured error (the element's own jitter and
//   the clock's), so the controller never chases noise and never tolerates more than it must.

// s: further off than this (a stalled element, mostly), seek: a pulse would take over 0.7 s
export const SEEK_BEYOND = 0.25;
export const MIN_NUDGE = 0.01; // smaller changes may not take effect in the media pipeline
export const MIN_BAND = 0.004; // s: the dead band's floor ...
export const MAX_BAND = 0.025; // s: ... and ceiling
// Until this page has measured its own: what Chromium showed here (bench/sync_accuracy.py; its
// pages learned seek 69-135 ms, start 70-133 ms, medians about 100, with 2-5 viewers on 2 cores).
// `fetch`: a seek or start to where nothing is buffered yet waits for the network as well.
export const DEFAULT_LAGS = { seek: 0.1, start: 0.1, play: 0.05, fetch: 0.3 }; // s
// s: with preservesPitch off, a change of rate takes effect about this long later (the audio
// already buffered plays out at the old rate): a jump of -FREE_DELAY * n on leaving 1.0 for 1 + n
// and +FREE_DELAY * n on returning, with no constant part and no step back (bench/rate_jumps.py
// --free: -3.9 / -8.1 / -16.9 / -26.0 ms at 1.05 / 1.1 / 1.2 / 1.35, +3.4 / +6.8 / +16.5 / +27.8
// ms at 0.95 / 0.9 / 0.8 / 0.65, and as much the other way on returning).
export const FREE_DELAY = 0.075;
export const MAX_PULSE = 0.35; // a pulse moves the rate at most 35 % ...
export const PULSE_S = 0.2; // ... and lasts about this long (longer at that cap) ...
// ... but a landing's, whose audio the seek has broken off anyway, half as long: a seek that
// landed 45 ms behind (netem's followers did) is mended at 35 % in 130 ms, not at 22 % in 200.
export const LANDING_PULSE_S = 0.1;
const MAX_PULSE_MS = 1000; // ... and never longer than this, whatever the readings say
// A pulse's jumps are spread over the audio buffered at its rate (about 150 ms at 35 %): the
// element's motion during the pulse and this long after it says nothing about its jitter.
const DRAIN_MS = 300;
const BAND_SIGMAS = 3;
const PERSIST = 3; // ticks a small error must last before a pulse
const LEARN = 0.5; // weight of a new measurement in a learned lag or pulse offset
const NOISE_SAMPLES = 40;
const MAX_JUMP = 0.1; // s: a larger jump across a rate change is something else (a stall)
// ms: the tick this long after a change of rate (the second, at 100 ms a tick) has seen the whole
// jump; the ones before see part of it, which says nothing about the jitter.
const JUMP_MS = 180;
export const LANDING_AFTER_MS = 200; // a landing judged sooner may not be moving yet ...
const LANDING_WITHIN_MS = 2500; // ... and one measured later says too little
// A landing is judged once two readings at least MOVING_MS apart show the element moving at this
// share of the rate or more: after `seeked` Chromium stands still a while (about 100 ms on a
// bare page) before it moves steadily, and a landing judged standing says nothing; until then
// the next reading comes RECHECK_MS later.
const MOVING = 0.8;
const MOVING_MS = 20;
const RECHECK_MS = 50;
const LAG_LIMIT = 0.5; // s

// The server stamps a viewer's own change this long after it was sent (ms): what the answers
// showed. A change whose segment was lost on the way is retransmitted 200 ms or more later, and
// its answer says nothing about the next one (an average of the answers took that in and shared
// the next change far ahead of the element): the median of the recent answers that came within
// twice the fastest (+ STAMP_SLACK_MS) is what the next one will take.
const STAMP_SAMPLES = 8;
const STAMP_SLACK_MS = 20;
const MAX_STAMP_DELAY_MS = 2000; // an answer slower than this says nothing at all

const clamp = (x, limit) => Math.max(-limit, Math.min(limit, x));
// The jump (s) with the pitch let go, on leaving the room's rate for `nudge` or returning from it.
const freeJump = (kind, nudge) => (kind === "engage" ? -FREE_DELAY : FREE_DELAY) * nudge;
const meanSquare = (xs) => (xs.length ? xs.reduce((sum, x) => sum + x * x, 0) / xs.length : 0);

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** How long after sending a change the server stamps it (ms), from the answers to earlier ones. */
export class StampDelay {
  constructor() {
    this.samples = [];
  }

  learn(ms) {
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_STAMP_DELAY_MS) return;
    this.samples.push(ms);
    if (this.samples.length > STAMP_SAMPLES) this.samples.shift();
  }

  /** The next change's delay (ms), or null before any answer. */
  get value() {
    if (!this.samples.length) return null;
    const fastest = Math.min(...this.samples);
    return median(this.samples.filter((ms) => ms <= 2 * fastest + STAMP_SLACK_MS));
  }
}

export class Steering {
  /** @param {{lags?: object, offsets?: object}} [learned] from `learned()` */
  constructor(learned = {}) {
    this.lags = { ...DEFAULT_LAGS, ...(learned.lags ?? {}) };
    this.offsets = { engage: 0, release: 0, ...(learned.offsets ?? {}) }; // pulses' vs FREE_DELAY
    this.nudge = 0; // the rate offset in force: rate = room rate * (1 + nudge)
    this.noise = []; // the element's own tick-to-tick residuals at the room's rate, s
    this.pulse = null; // {nudge, target, since, until, second}: a pulse (pitch free) runs
    this.draining = 0; // until then the element still settles from a pulse: not noise
    this.again = false; // a landing's pulse ended: one more may mend what it missed by
    this.arriving = null; // {kind, at, nudge, expected, seen, whole}: a pulse's jump arriving
    this.last = null; // the previous observation
    this.landing = null; // a seek or start whose lag is still to be measured
    this.outside = 0; // steady ticks in a row outside the band
  }

  /** What to keep between visits (the page stores it). */
  learned() {
    const { lags, offsets } = this;
    return { lags: { ...lags }, offsets: { ...offsets } };
  }

  /**
   * The dead band (s) for a clock whose own error has this standard deviation (s): the steady
   * readings and the clock. A pulse with the pitch let go reads as steadily as the room's rate and
   * its delays are learned (the traces: its readings follow the delay model within a
   * millisecond), so an error is mended down to what a reading can tell.
   */
  band(clockJitter = 0) {
    const sigma = Math.sqrt(meanSquare(this.noise) + clockJitter * clockJitter);
    return Math.min(MAX_BAND, Math.max(MIN_BAND, BAND_SIGMAS * sigma));
  }

  /** The element is about to seek to `from` (+ playing) or start from `from`: measure its lag. */
  expectLanding(kind, from, at) {
    this.reset(); // a seek or start ends any pulse: the element is back at the room's rate
    this.landing = { kind, from, at };
  }

  /** Forget the running pulse and the last observation (paused, seeking, a new source). */
  reset() {
    this.nudge = 0;
    this.pulse = null;
    this.again = false;
    this.draining = 0;
    this.arriving = null;
    this.last = null;
    this.outside = 0;
  }

  /**
   * One tick while the room plays and the element plays, is not seeking and has data.
   * @param {object} o
   * @param {number} o.at  performance.now() in ms
   * @param {number} o.position  the element's currentTime
   * @param {number} o.error  position minus where the room is (s)
   * @param {number} o.rate  the room's rate
   * @param {number} [o.clockJitter]  the clock's standard deviation (s)
   * @param {boolean} [o.stamped]  false while this page's own change awaits the server's stamp:
   *   the room is a guess until then, and a landing is not judged against it
   * @returns {{nudge: number, seek: boolean, until?: number, next?: number, keepPitch?: boolean}}
   *   rate = rate * (1 + nudge); seek: seek to the room's position plus `lags.seek` (or
   *   `lags.fetch` where nothing is buffered) instead; until: a pulse's end (ms); next: look at a
   *   landing again then (ms); keepPitch false: a pulse's rate, with preservesPitch off
   */
  decide({ at, position, error, rate, clockJitter = 0, stamped = true }) {
    const wait = this.landing && this.awaitLanding(at, position, rate, stamped);
    if (wait) return wait; // let it land before judging (or learning from) it
    const landing = this.landing;
    this.observe(at, position, rate);
    // What the element will read once the last jump has all arrived.
    error += this.pending();
    const size = Math.abs(error);
    if (size >= SEEK_BEYOND) {
      this.nudge = 0;
      this.pulse = null;
      return { nudge: 0, seek: true };
    }
    if (this.pulse) {
      // Re-timed on each reading, which shows the engage jump as it really was: it ends when the
      // release jump would leave the element on its target. (A timer brings that tick.)
      const { nudge, target } = this.pulse;
      const left = (target - error - this.jump("release", nudge)) / nudge; // s
      if (left * 1000 <= 1 || at - this.pulse.since > MAX_PULSE_MS) {
        this.again = !this.pulse.second;
        this.pulse = null;
        this.draining = at + DRAIN_MS;
        return this.setNudge(0);
      }
      this.pulse.until = at + left * 1000;
      this.setNudge(nudge);
      return { nudge, seek: false, until: this.pulse.until, keepPitch: false };
    }
    const band = this.band(clockJitter);
    const landed = landing && this.nudge === 0 && position > landing.from;
    // A pulse's end comes by a timer, which runs late under load (45 ms seen, 5 ms at 11 %), and
    // its delay varies (68-84 ms): once its return has all arrived, what it missed by beyond the
    // band gets one more pulse.
    const second = this.again && this.nudge === 0 && !this.arriving;
    if (second) this.again = false;
    // In steady play an error outside the band for a few ticks in a row (far outside: at once),
    // once the last pulse has settled: a reading just after one is still settling.
    const settled = this.nudge === 0 && !this.arriving && at >= this.draining;
    this.outside = settled && size > band ? this.outside + 1 : 0;
    const steady = this.outside >= PERSIST || (settled && size > PERSIST * band);
    if ((landed || second || steady) && size > band) {
      // Landed and moving, the error is what the lag was mis-guessed by; in steady play what the
      // element slipped by (a starved audio pipeline, the clock re-estimated): not noise. One
      // pulse with the pitch let go removes it, moving only towards the room on the way. (A
      // nudge with the pitch kept would first jump by its engage, -20 ms and more in Chromium:
      // an element behind the room fell further behind before it caught up, one ahead by less
      // than that jump could not be steered at all.)
      const pulse = this.planPulse(error, 0, landed || second ? LANDING_PULSE_S : PULSE_S);
      if (pulse) {
        const { nudge } = pulse;
        this.pulse = { nudge, target: 0, since: at, until: at + pulse.ms, second };
        this.draining = Infinity; // until the pulse ends
        this.outside = 0;
        return { ...this.setNudge(nudge), until: this.pulse.until, keepPitch: false };
      }
    }
    return this.setNudge(0);
  }

  /**
   * While a landing may not be judged yet: {nudge: 0, seek: false, next?} (next: when to look
   * again, ms), else null. Too soon, not yet moving steadily, or this page's own change not yet
   * stamped; given up on after LANDING_WITHIN_MS (then it is judged as it is).
   */
  awaitLanding(at, position, rate, stamped = true) {
    const landing = this.landing;
    const elapsed = at - landing.at;
    if (elapsed >= LANDING_WITHIN_MS) return null;
    const seen = landing.seen;
    landing.seen = { at, position };
    if (elapsed < LANDING_AFTER_MS) return { nudge: 0, seek: false };
    const gap = seen ? at - seen.at : 0;
    const moving =
      gap >= MOVING_MS &&
      position > landing.from &&
      position - seen.position >= (MOVING * rate * gap) / 1000;
    // A viewer's own change is shared as where its element will be when the server stamps it,
    // a guess: judged before the answer, a landing on that guess was taken as done and a stamp
    // 96 ms later than guessed was left to the steady corrections (0.75 s to a frame, netem).
    return moving && stamped ? null : { nudge: 0, seek: false, next: at + RECHECK_MS };
  }

  /** Put a pulse's `nudge` (or 0) in force and note a change of rate, whose jump the next ticks see. */
  setNudge(nudge) {
    if (nudge !== 0) this.outside = 0;
    const previous = this.nudge;
    this.nudge = nudge;
    if (this.last) {
      if (previous === 0 && nudge !== 0) this.arrive("engage", nudge);
      else if (previous !== 0 && nudge === 0) this.arrive("release", previous);
      this.last.nudge = nudge;
    }
    return { nudge, seek: false };
  }

  /** The rate left or returned to the room's now: its jump arrives over the next ticks. */
  arrive(kind, nudge) {
    const expected = this.jump(kind, nudge);
    const at = this.last.at;
    if (this.arriving) {
      // The previous change's jump is still arriving: the two mix, and neither is learned.
      Object.assign(this.arriving, { at, whole: false, expected: this.arriving.expected + expected });
    } else {
      this.arriving = { kind, at, nudge, expected, seen: 0, whole: true };
    }
  }

  /** What is still to come of the last jump (s; 0 once it has all been seen). */
  pending() {
    if (!this.arriving) return 0;
    const { expected, seen } = this.arriving;
    // Between none of it and all of it: the readings' noise may say more arrived already.
    const rest = Math.sign(expected) * (expected - seen);
    return Math.sign(expected) * Math.min(Math.abs(expected), Math.max(0, rest));
  }

  /** The jump (s) on leaving the room's rate for a pulse's `nudge` ("engage") or returning. */
  jump(kind, nudge) {
    return freeJump(kind, nudge) + this.offsets[kind];
  }

  /**
   * A pulse (pitch free) taking `error` to `target` in about `seconds`: {nudge, ms} such that its
   * delays and `ms` at that rate together do it; null when too small to be worth one.
   */
  planPulse(error, target, seconds = PULSE_S) {
    // The delays cancel out but for what this page's pulses showed.
    const needed = target - (error + this.offsets.engage + this.offsets.release);
    const nudge = clamp(needed / seconds, MAX_PULSE);
    if (Math.abs(nudge) < MIN_NUDGE) return null;
    const lasts = needed / nudge;
    return lasts > 0 ? { nudge, ms: lasts * 1000 } : null;
  }

  /** A pulse's jump seen on a change of rate by `nudge`: how far it is from FREE_DELAY's. */
  learnJump(kind, nudge, jump) {
    const offset = jump - freeJump(kind, nudge);
    this.offsets[kind] += LEARN * (offset - this.offsets[kind]);
  }

  /** Learn from how the element really moved since the last tick (no clock involved). */
  observe(at, position, rate) {
    const landing = this.landing;
    if (landing) {
      this.landing = null;
      const elapsed = at - landing.at;
      if (elapsed <= LANDING_WITHIN_MS && position > landing.from) {
        const lag = landing.from + (elapsed / 1000) * rate - position;
        const known = this.lags[landing.kind];
        this.lags[landing.kind] = Math.min(LAG_LIMIT, Math.max(0, known + LEARN * (lag - known)));
      }
    }
    const last = this.last;
    this.last = { at, position, nudge: this.nudge };
    if (!last || at - last.at > 1000) return;
    const expected = last.position + ((at - last.at) / 1000) * rate * (1 + last.nudge);
    const residual = position - expected;
    const jump = clamp(residual, MAX_JUMP);
    const arriving = this.arriving;
    if (arriving) {
      // Everything the element did since the rate changed is the jump.
      arriving.seen += jump;
      if (at - arriving.at >= JUMP_MS) {
        if (arriving.whole) {
          this.learnJump(arriving.kind, arriving.nudge, arriving.seen);
        }
        this.arriving = null;
      }
    } else if (Math.abs(residual) < MAX_JUMP && at >= this.draining && last.nudge === 0) {
      this.noise.push(residual);
      if (this.noise.length > NOISE_SAMPLES) this.noise.shift();
    }
  }
}
