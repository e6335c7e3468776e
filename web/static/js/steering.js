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
//   room's rate (Chromium re-times the audio it has buffered: about -20 ms on leaving 1.0 here).
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
// Until this page has measured its own: what Chromium showed here (bench/sync_accuracy.py).
// `fetch`: a seek or start to where nothing is buffered yet waits for the network as well.
export const DEFAULT_LAGS = { seek: 0.07, start: 0.07, play: 0.05, fetch: 0.3 }; // s
export const DEFAULT_ENGAGE = -0.02; // s
const BAND_SIGMAS = 3;
const PERSIST = 3; // ticks a small error must last before a nudge
const RELEASE = 0.75; // a nudge ends once the error would be this much of the band
const SMOOTH_TICKS = 4; // a nudge is judged on the mean of this many readings
const LEARN = 0.5; // weight of a new measurement in a learned lag or jump
const NOISE_SAMPLES = 40;
const JUMP_SAMPLES = 10;
const MAX_JUMP = 0.1; // s: a larger jump across a rate change is something else (a stall)
const LANDING_AFTER_MS = 200; // a landing measured sooner may not have started moving yet ...
const LANDING_WITHIN_MS = 2500; // ... and one measured later says too little
const LAG_LIMIT = 0.5; // s

const clamp = (x, limit) => Math.max(-limit, Math.min(limit, x));
const meanSquare = (xs) => (xs.length ? xs.reduce((sum, x) => sum + x * x, 0) / xs.length : 0);

/** The variance of xs around their mean (0 for fewer than two). */
function spread(xs) {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((sum, x) => sum + x, 0) / xs.length;
  return meanSquare(xs.map((x) => x - mean));
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
    this.release = Number(learned.release) || 0;
    this.nudge = 0; // the rate offset in force: rate = room rate * (1 + nudge)
    this.noise = []; // the element's own tick-to-tick residuals at the room's rate, s
    this.nudgedNoise = []; // ... and while nudged
    this.jumps = { engage: [], release: [] }; // recent jumps on leaving / returning to the rate
    this.last = null; // the previous observation
    this.landing = null; // a seek or start whose lag is still to be measured
    this.readings = []; // errors seen during the current nudge
    this.outside = 0; // steady ticks in a row outside the band
  }

  /** What to keep between visits (the page stores it). */
  learned() {
    return { lags: { ...this.lags }, engage: this.engage, release: this.release };
  }

  /** The dead band (s) for a clock whose own error has this standard deviation (s). */
  band(clockJitter = 0) {
    // Steady readings, the clock, how well the trend of a nudge's readings shows when to let go
    // (their noise averaged over SMOOTH_TICKS), and how much the jump on returning to the room's
    // rate varies around what was learned: a release lands that much off.
    const sigma = Math.sqrt(
      meanSquare(this.noise) +
        clockJitter * clockJitter +
        meanSquare(this.nudgedNoise) / SMOOTH_TICKS +
        spread(this.jumps.release),
    );
    return Math.min(MAX_BAND, Math.max(MIN_BAND, BAND_SIGMAS * sigma));
  }

  /** The element is about to seek to `from` (+ playing) or start from `from`: measure its lag. */
  expectLanding(kind, from, at) {
    this.landing = { kind, from, at };
    this.last = null;
  }

  /** Forget the running nudge and the last observation (paused, seeking, a new source). */
  reset() {
    this.nudge = 0;
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
    this.observe(at, position, rate);
    const size = Math.abs(error);
    if (size >= SEEK_BEYOND) {
      this.nudge = 0;
      return { nudge: 0, seek: true };
    }
    const band = this.band(clockJitter);
    let nudge = 0;
    if (this.nudge === 0) {
      // Leaving the room's rate moves the position by `engage` at once (backwards, in Chromium):
      // steer from where that jump leaves the element, so the nudge itself never overshoots.
      // A small error must persist a few ticks first: a reading just after a release is still
      // settling, and a nudge costs that jump.
      // When the jump alone would carry it past the room by more than the band (ahead by less
      // than the jump), no nudge can help without overshooting: the error is left as it is.
      // (A jump that nearly does the whole job is a pulse: released at once, so its landing is
      // judged with the release jump and with how much both jumps vary.)
      const after = error + this.engage;
      // A jump is read across one nudged tick, so it is never known better than that noise.
      const unsure =
        2 *
        Math.sqrt(
          spread(this.jumps.engage) + spread(this.jumps.release) + meanSquare(this.nudgedNoise),
        );
      const pulse = Math.abs(after) <= band;
      const lands = pulse ? after + this.release : after;
      const past = Math.sign(lands) !== Math.sign(error) && Math.abs(lands) + unsure > band;
      this.outside = size > band && !past ? this.outside + 1 : 0;
      if (this.outside >= PERSIST || (size > PERSIST * band && !past)) {
        nudge = this.proportional(after);
      }
    } else {
      // A nudged element reads a few ms noisier (the audio is being re-timed): judge the mean of
      // the last readings (each moved on by the nudge since), never turning round.
      this.readings.push({ at, error });
      if (this.readings.length > SMOOTH_TICKS) this.readings.shift();
      // Let go as soon as the release (and its jump) would leave it inside the band on this side:
      // what is left inside the band stays there, and going further invites overshoot.
      const smooth = settle(this.readings, at, rate * this.nudge);
      const side = -Math.sign(this.nudge); // +1: it was ahead, being slowed
      if (side * (smooth + this.release) > RELEASE * band) nudge = this.proportional(smooth);
    }
    if (nudge === 0 || this.nudge === 0) this.readings = []; // a new nudge starts after its jump
    if (nudge !== 0) this.outside = 0;
    const previous = this.nudge;
    this.nudge = nudge;
    if (this.last) {
      this.last.nudge = nudge;
      if (previous === 0 && nudge !== 0) this.last.changed = "engage";
      else if (previous !== 0 && nudge === 0) this.last.changed = "release";
    }
    return { nudge, seek: false };
  }

  proportional(error) {
    const nudge = clamp(-error / HORIZON, MAX_NUDGE);
    return Math.abs(nudge) < MIN_NUDGE ? (error > 0 ? -MIN_NUDGE : MIN_NUDGE) : nudge;
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
    if (last.changed === "engage" || last.changed === "release") {
      this[last.changed] += LEARN * (jump - this[last.changed]);
      const seen = this.jumps[last.changed];
      seen.push(jump);
      if (seen.length > JUMP_SAMPLES) seen.shift();
    }
    else if (Math.abs(residual) < MAX_JUMP) {
      const noise = last.nudge === 0 ? this.noise : this.nudgedNoise;
      noise.push(residual);
      if (noise.length > NOISE_SAMPLES) noise.shift();
    }
  }
}
