// The sync engine's controller: how far off a playing element may be and what to do about it.
// No DOM here, so it can be checked on its own (tests/web/test_steering.py runs it under node).
//
// Errors are in seconds, positive when the element is ahead of the room. Small errors are steered
// by playbackRate in proportion to the error (capped), large ones by a seek. Everything the element
// itself adds is measured on this page and compensated rather than tolerated:
// - `lags`: how long a seek (while playing), a seek-and-start (from paused), a plain play() and a
//   seek to where nothing is buffered yet keep the element from advancing; seeks aim that far
//   ahead and a viewer's own changes are sent so.
// - `engage` / `release`: the jump of the position when playbackRate leaves / returns to the
//   room's rate. Chromium here: leaving 1.0 for 1 + n moves currentTime by about -20 ms - 66 ms * n
//   (its time-stretcher starts with a 20 ms window and re-times the audio it has buffered),
//   returning moves it by about +1 ms + 75 ms * n (bench/rate_jumps.py). `engage`/`release` are
//   learned from this page's plain nudges (at about `jumpedAt`).
//   A jump arrives over two ticks, not one: part in the first tick after the change and the rest
//   (often the larger part) in the second. It is learned as all the element did over JUMP_MS, and
//   until then what has not arrived yet counts as part of the error.
// - after a seek or start lands, what is left of the error is removed by one timed pulse of a
//   larger rate (the error is known then, and nudging it away at 10 % takes most of a second),
//   with the pitch let go: then Chromium has no jump of its own, the new rate simply takes effect
//   once the audio already buffered has played (FREE_DELAY), and the element never moves away
//   from the room first.
// - the dead band: a few standard deviations of the measured error (the element's own jitter, the
//   clock's, how exactly a nudge can be let go), so the controller never chases noise and never
//   tolerates more than it must.

// s: further off than this (a stalled element, mostly), seek: a nudge would take over 2.5 s
export const SEEK_BEYOND = 0.25;
export const MAX_NUDGE = 0.1; // playbackRate moves at most 10 % from the room's rate
export const MIN_NUDGE = 0.01; // smaller changes may not take effect in the media pipeline
export const HORIZON = 0.5; // s: a nudge removes the error in about this long, never faster
export const MIN_BAND = 0.004; // s: the dead band's floor ...
export const MAX_BAND = 0.025; // s: ... and ceiling
// Until this page has measured its own: what Chromium showed here (bench/sync_accuracy.py; its
// pages learned seek 69-135 ms, start 70-133 ms, medians about 100, with 2-5 viewers on 2 cores).
// `fetch`: a seek or start to where nothing is buffered yet waits for the network as well.
export const DEFAULT_LAGS = { seek: 0.1, start: 0.1, play: 0.05, fetch: 0.3 }; // s
// s, over both ticks: the recorded traces show -17 to -30 ms (median -25) at nudges of 2-10 %,
// and a release of -3 to -5 ms.
export const DEFAULT_ENGAGE = -0.022;
export const DEFAULT_RELEASE = -0.004;
const JUMP_SD = 0.004; // s: how much the engage jump varies from one nudge to the next (traces)
// s per unit of nudge: how the jump on leaving 1.0 for 1 + n / returning from it grows with n
// (bench/rate_jumps.py, 1.05 ... 1.5 and 0.95 ... 0.67 on a bare page): carries a plain nudge's
// jumps from the nudge they were learned at to another.
export const SLOPES = { engage: -0.066, release: 0.075 };
// s: with preservesPitch off, a change of rate takes effect about this long later (the audio
// already buffered plays out at the old rate): a jump of -FREE_DELAY * n on leaving 1.0 for 1 + n
// and +FREE_DELAY * n on returning, with no constant part and no step back (bench/rate_jumps.py
// --free: -3.9 / -8.1 / -16.9 / -26.0 ms at 1.05 / 1.1 / 1.2 / 1.35, +3.4 / +6.8 / +16.5 / +27.8
// ms at 0.95 / 0.9 / 0.8 / 0.65, and as much the other way on returning).
export const FREE_DELAY = 0.075;
export const MAX_PULSE = 0.35; // a landing's pulse moves the rate at most 35 % ...
export const PULSE_S = 0.2; // ... and lasts about this long (longer at that cap) ...
const MAX_PULSE_MS = 1000; // ... and never longer than this, whatever the readings say
// A pulse's jumps are spread over the audio buffered at its rate (about 150 ms at 35 %): the
// element's motion during the pulse and this long after it says nothing about its jitter.
const DRAIN_MS = 300;
const BAND_SIGMAS = 3;
const PERSIST = 3; // ticks a small error must last before a nudge
const RELEASE = 0.75; // a nudge ends once the error would be this much of the band
const SMOOTH_TICKS = 4; // a nudge is judged on the mean of this many readings
const LEARN = 0.5; // weight of a new measurement in a learned lag or jump
const NOISE_SAMPLES = 40;
// s: how far apart a nudged element's readings fall in Chromium (the recorded traces: +4, +4,
// -6 ms and so on, 4.5 ms RMS), until this page has measured PRIOR_SAMPLES of its own.
const NUDGED_NOISE = 0.0045;
const PRIOR_SAMPLES = 10;
const JUMP_SAMPLES = 10;
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
// ms after a nudge or pulse ends: what it left is its own landing error (the jumps' spread), and
// turning round for it costs another engage jump, so only an error beyond 2 bands turns round.
const TURN_MS = 1000;

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

/** The variance of xs around their mean (0 for fewer than two). */
function spread(xs) {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((sum, x) => sum + x, 0) / xs.length;
  return meanSquare(xs.map((x) => x - mean));
}

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The mean of recent readings, each carried forward to `at` at the rate they change by (s/s). */
function settle(readings, at, slope) {
  const carried = readings.map((r) => r.error + ((at - r.at) / 1000) * slope);
  return carried.reduce((sum, e) => sum + e, 0) / carried.length;
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
  /** @param {{lags?: object, engage?: number, release?: number}} [learned] from `learned()` */
  constructor(learned = {}) {
    this.lags = { ...DEFAULT_LAGS, ...(learned.lags ?? {}) };
    this.engage = Number(learned.engage ?? DEFAULT_ENGAGE) || 0;
    this.release = Number(learned.release ?? DEFAULT_RELEASE) || 0;
    this.offsets = { engage: 0, release: 0, ...(learned.offsets ?? {}) }; // pulses' vs FREE_DELAY
    this.nudge = 0; // the rate offset in force: rate = room rate * (1 + nudge)
    this.noise = []; // the element's own tick-to-tick residuals at the room's rate, s
    this.nudgedNoise = []; // ... and while nudged
    this.jumps = { engage: [], release: [] }; // recent jumps on leaving / returning to the rate
    // The nudge `engage` / `release` were learned at (the defaults count as measured at 0).
    this.jumpedAt = { engage: 0, release: 0, ...(learned.jumpedAt ?? {}) };
    this.pulse = null; // {nudge, target, since, until}: a landing's pulse (pitch free) runs
    this.draining = 0; // until then the element still settles from a pulse: not noise
    this.ended = null; // {at, side}: the last nudge or pulse let go, and which way it pushed
    this.again = false; // a landing's pulse ended: one more may mend what it missed by
    this.arriving = null; // {kind, at, nudge, free, expected, seen, whole}: a jump arriving
    this.last = null; // the previous observation
    this.landing = null; // a seek or start whose lag is still to be measured
    this.readings = []; // errors seen during the current nudge
    this.turned = false; // the current nudge has turned round once
    this.outside = 0; // steady ticks in a row outside the band
  }

  /** What to keep between visits (the page stores it). */
  learned() {
    const { lags, engage, release, jumpedAt, offsets } = this;
    return { lags: { ...lags }, engage, release, jumpedAt: { ...jumpedAt }, offsets: { ...offsets } };
  }

  /** The dead band (s) for a clock whose own error has this standard deviation (s). */
  band(clockJitter = 0) {
    // Steady readings, the clock, how well the trend of a nudge's readings shows when to let go
    // (their noise averaged over SMOOTH_TICKS), and how much the jump on returning to the room's
    // rate varies around what was learned: a release lands that much off.
    const sigma = Math.sqrt(
      meanSquare(this.noise) +
        clockJitter * clockJitter +
        this.nudgedSquare() / SMOOTH_TICKS +
        spread(this.jumps.release),
    );
    return Math.min(MAX_BAND, Math.max(MIN_BAND, BAND_SIGMAS * sigma));
  }

  /**
   * How far off a landing may be left (s). A pulse with the pitch let go has neither the noise
   * of a nudged element's readings nor a release jump to miss by (the traces: its readings
   * follow the delay model within a millisecond), so only the steady readings and the clock
   * count: a landing is mended down to what a reading can tell.
   */
  landingBand(clockJitter = 0) {
    const sigma = Math.sqrt(meanSquare(this.noise) + clockJitter * clockJitter);
    return Math.min(MAX_BAND, Math.max(MIN_BAND, BAND_SIGMAS * sigma));
  }

  /** The mean square of the nudged readings' noise, the prior standing in for missing ones. */
  nudgedSquare() {
    const seen = this.nudgedNoise;
    const missing = Math.max(0, PRIOR_SAMPLES - seen.length);
    const sum = seen.reduce((total, x) => total + x * x, 0);
    return (sum + missing * NUDGED_NOISE * NUDGED_NOISE) / (seen.length + missing);
  }

  /** How much an engage's jump may differ from the learned one (s): one s.d. of those seen. */
  jumpUnsure() {
    const seen = this.jumps.engage;
    return seen.length >= 3 ? Math.sqrt(spread(seen)) : JUMP_SD;
  }

  /** The element is about to seek to `from` (+ playing) or start from `from`: measure its lag. */
  expectLanding(kind, from, at) {
    this.reset(); // a seek or start ends any nudge: the element is back at the room's rate
    this.landing = { kind, from, at };
  }

  /** Forget the running nudge and the last observation (paused, seeking, a new source). */
  reset() {
    this.nudge = 0;
    this.pulse = null;
    this.again = false;
    this.draining = 0;
    this.arriving = null;
    this.last = null;
    this.readings = [];
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
    const band = this.band(clockJitter);
    if (this.pulse) {
      // Re-timed on each reading, which shows the engage jump as it really was: it ends when the
      // release jump would leave the element on its target. (A timer brings that tick.)
      const { nudge, target } = this.pulse;
      const left = (target - error - this.jump("release", nudge, true)) / nudge; // s
      if (left * 1000 <= 1 || at - this.pulse.since > MAX_PULSE_MS) {
        this.again = !this.pulse.second;
        this.pulse = null;
        this.draining = at + DRAIN_MS;
        return this.setNudge(0, true);
      }
      this.pulse.until = at + left * 1000;
      this.setNudge(nudge, true);
      return { nudge, seek: false, until: this.pulse.until, keepPitch: false };
    }
    const landed = landing && this.nudge === 0 && position > landing.from;
    // A pulse's end comes by a timer, which runs late under load (45 ms seen, 5 ms at 11 %), and
    // its delay varies (68-84 ms): once its return has all arrived, what it missed by beyond the
    // landing band gets one more pulse.
    const second = this.again && this.nudge === 0 && !this.arriving;
    if (second) this.again = false;
    if ((landed || second) && size > this.landingBand(clockJitter)) {
      // Landed and moving: the error is what the lag was mis-guessed by, not noise. One pulse
      // with the pitch let go removes it, moving only towards the room on the way.
      const pulse = this.planPulse(error, 0);
      if (pulse) {
        const { nudge } = pulse;
        this.pulse = { nudge, target: 0, since: at, until: at + pulse.ms, second };
        this.draining = Infinity; // until the pulse ends
        return { ...this.setNudge(pulse.nudge, true), until: this.pulse.until, keepPitch: false };
      }
    }
    let nudge = 0;
    if (this.nudge === 0) {
      // Leaving the room's rate moves the position by `engage` over the next two ticks
      // (backwards, in Chromium): steer from where that jump leaves the element, so the nudge
      // itself never overshoots.
      // A small error must persist a few ticks first: a reading just after a release is still
      // settling, and a nudge costs that jump.
      // When the jump alone would carry it past the room by more than the band (ahead by less
      // than the jump), no nudge can help without overshooting: the error is left as it is.
      // (A jump that nearly does the whole job leaves the nudge little to do; if the release's
      // jump would then carry it past, the nudge turns round rather than let go.)
      const after = error + this.engage;
      const past =
        Math.sign(after) !== Math.sign(error) && Math.abs(after) + this.jumpUnsure() > band;
      const turns =
        this.ended !== null &&
        at - this.ended.at < TURN_MS &&
        Math.sign(-after) !== this.ended.side &&
        size <= 2 * band;
      this.outside = size > band && !past && !turns ? this.outside + 1 : 0;
      if (!turns && (this.outside >= PERSIST || (size > PERSIST * band && !past))) {
        // Slowing down, the engage jump (backwards) helps, and how much it does shows only
        // over two ticks: until then the nudge is the smallest, not to push on past the room.
        nudge = Math.max(this.proportional(after), -MIN_NUDGE);
      }
    } else {
      // A nudged element reads a few ms noisier (the audio is being re-timed): judge the mean of
      // the last readings (each moved on by the nudge since).
      this.readings.push({ at, error });
      if (this.readings.length > SMOOTH_TICKS) this.readings.shift();
      // Until the engage jump has all arrived, what is left of it is a guess as noisy as a
      // nudged reading (the late part is often the larger): the nudge holds.
      if (this.arriving) return this.setNudge(this.nudge);
      // Let go as soon as the release (and its jump) would leave it inside the band on this side:
      // what is left inside the band stays there, and going further invites overshoot.
      const smooth = settle(this.readings, at, rate * this.nudge);
      const side = -Math.sign(this.nudge); // +1: it was ahead, being slowed
      const lands = smooth + this.jump("release", this.nudge); // if let go now
      // A reading already past the room stops it too: pushing on only carries it further.
      const crossed = side * error < 0;
      if (!crossed && side * lands > RELEASE * band) {
        nudge = this.proportional(smooth);
      } else if (side * lands < -RELEASE * band && !this.turned) {
        // The engage jump did more than expected: carried on, the release would leave it past the
        // room. Between two rates other than the room's there is no constant jump (only the
        // re-timing, small at these rates), so it turns round once instead of letting go.
        this.turned = true;
        this.readings = [{ at, error }];
        nudge = this.proportional(lands);
      }
    }
    return this.setNudge(nudge);
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
    // 96 ms later than guessed was left to the plain nudges (0.75 s to a frame, netem).
    return moving && stamped ? null : { nudge: 0, seek: false, next: at + RECHECK_MS };
  }

  /**
   * Put `nudge` in force and note a change of rate, whose jump the next tick measures. `free`:
   * a pulse's, with the pitch let go.
   */
  setNudge(nudge, free = false) {
    if (nudge === 0 || this.nudge === 0) {
      this.readings = []; // a new nudge starts after its jump
      this.turned = false;
    }
    if (nudge !== 0) this.outside = 0;
    const previous = this.nudge;
    this.nudge = nudge;
    if (this.last) {
      if (previous === 0 && nudge !== 0) this.arrive("engage", nudge, free);
      else if (previous !== 0 && nudge === 0) {
        this.ended = { at: this.last.at, side: Math.sign(previous) };
        this.arrive("release", previous, free); // the release jump depends on the nudge let go
      }
      this.last.nudge = nudge;
    }
    return { nudge, seek: false };
  }

  /** The rate left or returned to the room's now: its jump arrives over the next ticks. */
  arrive(kind, nudge, free) {
    const expected = this.jump(kind, nudge, free);
    const at = this.last.at;
    if (this.arriving) {
      // The previous change's jump is still arriving: the two mix, and neither is learned.
      Object.assign(this.arriving, { at, whole: false, expected: this.arriving.expected + expected });
    } else {
      this.arriving = { kind, at, nudge, free, expected, seen: 0, whole: true };
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

  /**
   * The jump (s) on leaving the room's rate for `nudge` ("engage") or returning from it; `free`:
   * with the pitch let go (a pulse).
   */
  jump(kind, nudge, free = false) {
    if (free) return freeJump(kind, nudge) + this.offsets[kind];
    return this[kind] + SLOPES[kind] * (nudge - this.jumpedAt[kind]);
  }

  /**
   * A pulse (pitch free) taking `error` to `target`: {nudge, ms} such that its delays and `ms`
   * at that rate together do it; null when too small to be worth one.
   */
  planPulse(error, target) {
    // The delays cancel out but for what this page's pulses showed.
    const needed = target - (error + this.offsets.engage + this.offsets.release);
    const nudge = clamp(needed / PULSE_S, MAX_PULSE);
    if (Math.abs(nudge) < MIN_NUDGE) return null;
    const seconds = needed / nudge;
    return seconds > 0 ? { nudge, ms: seconds * 1000 } : null;
  }

  proportional(error) {
    const nudge = clamp(-error / HORIZON, MAX_NUDGE);
    return Math.abs(nudge) < MIN_NUDGE ? (error > 0 ? -MIN_NUDGE : MIN_NUDGE) : nudge;
  }

  /** A jump seen on a change of rate by `nudge` (`free`: a pulse's). */
  learnJump(kind, nudge, jump, free) {
    if (free) {
      // How far this page's pulses' jumps are from FREE_DELAY's.
      const offset = jump - freeJump(kind, nudge);
      this.offsets[kind] += LEARN * (offset - this.offsets[kind]);
    } else {
      this[kind] += LEARN * (jump - this[kind]);
      this.jumpedAt[kind] += LEARN * (nudge - this.jumpedAt[kind]);
      const seen = this.jumps[kind];
      seen.push(jump);
      if (seen.length > JUMP_SAMPLES) seen.shift();
      // A jump is read with the noise of the ticks it spans (an engage: two nudged ones, +-5 ms
      // each): once there are a few, their median says more than the latest ones.
      if (seen.length >= 3) this[kind] = median(seen);
    }
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
          this.learnJump(arriving.kind, arriving.nudge, arriving.seen, arriving.free);
        }
        this.arriving = null;
      }
    } else if (Math.abs(residual) < MAX_JUMP && at >= this.draining) {
      const noise = last.nudge === 0 ? this.noise : this.nudgedNoise;
      noise.push(residual);
      if (noise.length > NOISE_SAMPLES) noise.shift();
    }
  }
}
