// The server's clock, NTP style, re-estimated all the time: a burst of samples on connecting,
// then one every few seconds. Each way's delay is the path's own plus whatever a message waited
// on the way (jitter, a queue behind other traffic, a retransmission, a busy page or server):
// the least delay each way over the recent samples is the nearest either came to the bare path,
// and the offset is half their difference (the bare path taken as symmetric, as NTP does). The
// median of the samples with a round trip within 1.25x the fastest took in waits of up to a
// quarter of a round trip on one way: through the emulated link (80-95 ms round trips) the
// pages' offsets were up to 17 ms off, nearly always the same way (a 5-viewer page: 10-17 ms for
// 8 s). The spread of the samples with a round trip close to the fastest is the clock's own
// error, which sizes the sync engine's dead band.

const WINDOW = 16; // recent samples considered
const BURST = 6; // taken at once on (re)connecting
const EVERY_MS = 2000; // then one this often
const FAST = 1.25; // a sample counts if its round trip is within 1.25 x the fastest (+1 ms)

function localNow() {
  return performance.timeOrigin + performance.now();
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Offset, fastest and typical round trip, and spread (ms) from samples {roundTrip, offset}. */
export function estimate(samples) {
  const fastest = Math.min(...samples.map((s) => s.roundTrip));
  // Each sample's way there is t1 - t0 = roundTrip / 2 + offset, its way back t3 - t2 the rest.
  const there = Math.min(...samples.map((s) => s.roundTrip / 2 + s.offset));
  const back = Math.min(...samples.map((s) => s.roundTrip / 2 - s.offset));
  const offset = (there - back) / 2;
  const good = samples.filter((s) => s.roundTrip <= fastest * FAST + 1);
  const squares = good.reduce((sum, s) => sum + (s.offset - offset) ** 2, 0);
  const spread = Math.sqrt(squares / good.length);
  return {
    offset,
    roundTrip: fastest,
    typicalRoundTrip: median(samples.map((s) => s.roundTrip)),
    // One sample cannot show its own error: assume a tenth of its round trip until more come.
    jitter: good.length > 2 ? spread : Math.max(spread, fastest / 10),
    used: good.length,
  };
}

export class ServerClock {
  /**
   * @param {() => Promise<{receivedAt: number, sentAt: number}>} sample
   *   one reading of the server clock (epoch ms when the request arrived and the answer left)
   */
  constructor(sample, { every = EVERY_MS } = {}) {
    this.sample = sample;
    this.every = every;
    this.samples = [];
    this.offset = 0;
    this.roundTrip = Infinity;
    this.typicalRoundTrip = Infinity;
    this.jitter = Infinity; // ms
    this.synced = false;
    this.generation = 0;
    this.timer = null;
  }

  /** Server time now, in ms since the epoch. */
  now() {
    return localNow() + this.offset;
  }

  /** One way to the server, as a message usually takes it (ms). */
  get oneWay() {
    return Number.isFinite(this.typicalRoundTrip) ? this.typicalRoundTrip / 2 : 0;
  }

  /** Take `samples` readings now; errors leave the estimate as it was. */
  async sync(samples = BURST) {
    for (let i = 0; i < samples; i += 1) {
      if (!(await this.measure())) break;
    }
    return this.synced;
  }

  /** A burst now, then a sample every `every` ms until `stop()`. */
  start() {
    this.stop();
    const generation = this.generation;
    const next = () => {
      if (generation !== this.generation) return;
      this.timer = setTimeout(() => this.measure().finally(next), this.every);
    };
    return this.sync().finally(next);
  }

  /** No more samples; one in flight is discarded. */
  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
  }

  async measure() {
    const generation = this.generation;
    const t0 = localNow();
    let reading;
    try {
      reading = await this.sample();
    } catch {
      return false;
    }
    const t3 = localNow();
    if (generation !== this.generation) return false;
    const t1 = Number(reading.receivedAt);
    const t2 = Number(reading.sentAt ?? reading.receivedAt);
    if (!Number.isFinite(t1) || !Number.isFinite(t2)) return false;
    this.samples.push({ roundTrip: t3 - t0 - (t2 - t1), offset: (t1 - t0 + (t2 - t3)) / 2 });
    if (this.samples.length > WINDOW) this.samples.shift();
    Object.assign(this, estimate(this.samples));
    this.synced = true;
    return true;
  }
}
