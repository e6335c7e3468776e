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
//   learned from this page's plain nudges (at about `jumpedAt`); for a pulse's larger rates
//   PULSE_JUMPS, plus what this page's own pulses showed (`offsets`).
//   A jump arrives over two ticks, not one: part in the first tick after the change and the rest
//   (often the larger part) in the second. It is learned as all the element did over JUMP_MS, and
//   until then what has not arrived yet counts as part of the error.
// - after a seek or start lands, what is left of the error is removed by one timed pulse of a
//   larger rate (the error is known then, and nudging it away at 10 % takes most of a second).
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
// [s, s per unit of nudge]: the jump on leaving 1.0 for 1 + n / returning from it at a pulse's
// rates. The slopes are bench/rate_jumps.py's (1.05 ... 1.5 and 0.95 ... 0.67 on a bare page);
// the intercepts fit the sync bench's 14 pulses at 17-29 % (-31 to -45 ms and +17 to +27 ms,
// summed over the ticks they arrived in). The slopes also carry a plain nudge's jumps from the
// nudge they were learned at to another.
export const PULSE_JUMPS = { engage: [-0.0235, -0.066], release: [0.005, 0.075] };
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
const LAG_LIMIT = 0.5; // s
// ms after a nudge or pulse ends: what it left is its own landing error (the jumps' spread), and
// turning round for it costs another engage jump, so only an error beyond 2 bands turns round.
const TURN_MS = 1000;

const clamp = (x, limit) => Math.max(-limit, Math.min(limit, x));
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

export class Steering {
  /** @param {{lags?: object, engage?: number, release?: number}} [learned] from `learned()` */
  constructor(learned = {}) {
    this.lags = { ...DEFAULT_LAGS, ...(learned.lags ?? {}) };
    this.engage = Number(learned.engage ?? DEFAULT_ENGAGE) || 0;
    this.release = Number(learned.release ?? DEFAULT_RELEASE) || 0;
    this.offsets = { engage: 0, release: 0, ...(learned.offsets ?? {}) }; // pulses' vs PULSE_JUMPS
    this.nudge = 0; // the rate offset in force: rate = room rate * (1 + nudge)
    this.noise = []; // the element's own tick-to-tick residuals at the room's rate, s
    this.nudgedNoise = []; // ... and while nudged
    this.jumps = { engage: [], release: [] }; // recent jumps on leaving / returning to the rate
    // The nudge `engage` / `release` were learned at (the defaults count as measured at 0).
    this.jumpedAt = { engage: 0, release: 0, ...(learned.jumpedAt ?? {}) };
    this.pulse = null; // {nudge, until}: a timed pulse after a landing is running
    this.draining = 0; // until then the element still settles from a pulse: not noise
    this.ended = null; // {at, side}: the last nudge or pulse let go, and which way it pushed
    this.arriving = null; // {kind, at, nudge, expected, seen, whole}: a jump still arriving
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

  /**
   * How far behind the room a seek or start aims (s). An element ahead by more than the band but
   * by less than the engage jump's reach less the band cannot be mended (the jump would carry it
   * past the room by more than the band, so it is left there); one behind is mended by a pulse.
   * Landings vary by 10-14 ms (s.d.) in Chromium here, so they aim below that reach.
   */
  aimBehind(clockJitter = 0) {
    return Math.max(0, -this.engage + this.jumpUnsure() - this.band(clockJitter));
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
   * @returns {{nudge: number, seek: boolean}}  rate = rate * (1 + nudge); seek: seek to the
   *   room's position plus `lags.seek` (or `lags.fetch` where nothing is buffered) instead
   */
  decide({ at, position, error, rate, clockJitter = 0 }) {
    if (this.landing && at - this.landing.at < LANDING_AFTER_MS) {
      return { nudge: 0, seek: false }; // let it land before judging (or learning from) it
    }
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
      const left = (target - error - this.jump("release", nudge)) / nudge; // s
      if (left * 1000 <= 1 || at - this.pulse.since > MAX_PULSE_MS) {
        this.pulse = null;
        this.draining = at + DRAIN_MS;
        return this.setNudge(0);
      }
      this.pulse.until = at + left * 1000;
      this.setNudge(nudge);
      return { nudge, seek: false, until: this.pulse.until };
    }
    if (landing && this.nudge === 0 && position > landing.from && size > band) {
      // Landed and moving: the error is what the lag was mis-guessed by, not noise. One pulse
      // removes it, timed so that both jumps included it ends on the room; from behind, it aims
      // half a band short, as a miss ahead past the band may not be mended (see aimBehind).
      const target = error < 0 ? -band / 2 : 0;
      const pulse = this.planPulse(error, target);
      if (pulse) {
        this.pulse = { nudge: pulse.nudge, target, since: at, until: at + pulse.ms };
        this.draining = Infinity; // until the pulse ends
        return { ...this.setNudge(pulse.nudge), until: this.pulse.until };
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

  /** Put `nudge` in force and note a change of rate, whose jump the next tick measures. */
  setNudge(nudge) {
    if (nudge === 0 || this.nudge === 0) {
      this.readings = []; // a new nudge starts after its jump
      this.turned = false;
    }
    if (nudge !== 0) this.outside = 0;
    const previous = this.nudge;
    this.nudge = nudge;
    if (this.last) {
      if (previous === 0 && nudge !== 0) this.arrive("engage", nudge);
      else if (previous !== 0 && nudge === 0) {
        this.ended = { at: this.last.at, side: Math.sign(previous) };
        this.arrive("release", previous); // the release jump depends on the nudge let go
      }
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

  /** The jump (s) on leaving the room's rate for `nudge` ("engage") or returning from it. */
  jump(kind, nudge) {
    const [intercept, slope] = PULSE_JUMPS[kind];
    if (Math.abs(nudge) > MAX_NUDGE) return intercept + slope * nudge + this.offsets[kind];
    return this[kind] + slope * (nudge - this.jumpedAt[kind]);
  }

  /**
   * A pulse taking `error` to `target`: {nudge, ms} such that the engage jump, `ms` at that rate
   * and the release jump together do it; null when a plain nudge is enough.
   */
  planPulse(error, target) {
    // What leaving and coming back cost at a pulse's rates, and how that grows with the rate.
    const [[engage, engageSlope], [release, releaseSlope]] = [
      PULSE_JUMPS.engage,
      PULSE_JUMPS.release,
    ];
    const slope = engageSlope + releaseSlope;
    const cycle = engage + release + this.offsets.engage + this.offsets.release;
    const needed = target - (error + cycle);
    const nudge = clamp(needed / PULSE_S, MAX_PULSE);
    // Less than a plain nudge could do in that time: the plain nudge does it.
    if (Math.abs(nudge) <= MAX_NUDGE) return null;
    const seconds = (needed - slope * nudge) / nudge;
    return seconds > 0 ? { nudge, ms: seconds * 1000 } : null;
  }

  proportional(error) {
    const nudge = clamp(-error / HORIZON, MAX_NUDGE);
    return Math.abs(nudge) < MIN_NUDGE ? (error > 0 ? -MIN_NUDGE : MIN_NUDGE) : nudge;
  }

  /** A jump seen on a change of rate by `nudge`. */
  learnJump(kind, nudge, jump) {
    if (Math.abs(nudge) > MAX_NUDGE) {
      // A pulse: how far this page's jumps at such rates are from PULSE_JUMPS.
      const [intercept, slope] = PULSE_JUMPS[kind];
      const offset = jump - intercept - slope * nudge;
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
        if (arriving.whole) this.learnJump(arriving.kind, arriving.nudge, arriving.seen);
        this.arriving = null;
      }
    } else if (Math.abs(residual) < MAX_JUMP && at >= this.draining) {
      const noise = last.nudge === 0 ? this.noise : this.nudgedNoise;
      noise.push(residual);
      if (noise.length > NOISE_SAMPLES) noise.shift();
    }
  }
}
