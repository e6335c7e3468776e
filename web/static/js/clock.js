// The server's clock, NTP style: the offset from the sample with the smallest round trip.

const SAMPLES = 8;

function localNow() {
  return performance.timeOrigin + performance.now();
}

export class ServerClock {
  /**
   * @param {() => Promise<{receivedAt: number, sentAt: number}>} sample
   *   one reading of the server clock (epoch ms when the request arrived and the answer left)
   */
  constructor(sample) {
    this.sample = sample;
    this.offset = 0;
    this.roundTrip = Infinity;
    this.synced = false;
  }

  /** Server time now, in ms since the epoch. */
  now() {
    return localNow() + this.offset;
  }

  /** Take a few samples and keep the best. An earlier estimate gives way unless the new batch is
   *  clearly worse (a congested moment); errors leave the previous estimate in place. */
  async sync(samples = SAMPLES) {
    let best = null;
    for (let i = 0; i < samples; i += 1) {
      const t0 = localNow();
      let reading;
      try {
        reading = await this.sample();
      } catch {
        break;
      }
      const t3 = localNow();
      const t1 = Number(reading.receivedAt);
      const t2 = Number(reading.sentAt ?? reading.receivedAt);
      if (!Number.isFinite(t1) || !Number.isFinite(t2)) continue;
      const roundTrip = t3 - t0 - (t2 - t1);
      if (!best || roundTrip < best.roundTrip) {
        best = { roundTrip, offset: (t1 - t0 + (t2 - t3)) / 2 };
      }
    }
    if (best && (!this.synced || best.roundTrip <= this.roundTrip * 2 + 5)) {
      this.offset = best.offset;
      this.roundTrip = best.roundTrip;
      this.synced = true;
    }
    return this.synced;
  }
}
