// Keep a <video> on the shared playhead, report the viewer's own play/pause/seek, never echo.
//
// The room's state is {timestamp, playing, rate, serverTime, version}: the position was
// `timestamp` at `serverTime` (server epoch ms) and moves at `rate` while playing. Each tick
// compares the element with where the room is now; steering.js decides (a short pulse of the rate,
// or a seek when far) and learns this page's own lags. A paused room puts every element on exactly
// its position, so every viewer shows the same frame.

import { LANDING_AFTER_MS, StampDelay, Steering } from "./steering.js";

export const IN_SYNC = 0.25; // s: what the indicator calls "in sync"
const EXACT = 0.0005; // s: a paused element this close is on the position (media time is in µs)
const USER_SEEK = 0.5; // s: a seek landing further than this from the room is the viewer's own
const OWN_SEEK = 0.1; // s: a `seeked` this close to a target we set is our own correction
const TICK_MS = 100;
const USER_SEEK_GRACE_MS = 1000; // a viewer's seek is left alone this long for its `seeked`
const HAVE_METADATA = 1;
const HAVE_FUTURE_DATA = 3;
const BUFFERED_AHEAD = 0.5; // s: a seek target counts as buffered with this much after it
const SPREAD_TICKS = 20; // the "±" shown is the spread of this many recent errors
// .3: a pulse's offsets are against its pitch-free delay (.2 held them against Chromium's jumps)
const LEARNED_KEY = "cowatch.sync.learned.3";
const EVENT_WITHIN_MS = 1000; // a play or pause event later than this is not coming
const MEDIAN_ERROR = 1.25; // a median's standard error per standard deviation over sqrt(n)

/** "±N ms" for an accuracy() spread: the sync indicator shows it, a party's member list can too. */
export function plusMinus(ms) {
  return Number.isFinite(ms) ? `±${Math.max(1, Math.round(ms))} ms` : "";
}

/** A TimestampEvent from the API, with numbers made numbers. */
export function normalise(event) {
  return {
    videoId: event.videoId,
    timestamp: Number(event.timestamp) || 0,
    playing: Boolean(event.playing),
    rate: Number(event.rate) || 1,
    serverTime: Number(event.serverTime) || 0,
    version: Number(event.version) || 0,
    userId: event.userId ?? null,
    username: event.user?.username ?? event.username ?? null,
  };
}

export class SyncPlayer extends EventTarget {
  /**
   * @param {HTMLVideoElement} video
   * @param {object} options
   * @param {{now(): number}} options.clock  server time in epoch ms
   * @param {(timestamp: number, playing: boolean, at: number) => Promise<object>} options.commit
   *   `at`: the server-clock time at which `timestamp` is this page's position (a playing
   *   change is moved by the server from then to its stamp, however long it took to arrive)
   *   sends updateVideoTimestamp and resolves with the TimestampEvent it returns
   * @param {() => boolean} options.canControl  false: local changes are undone, not sent
   * @param {number} [options.duration]  seconds, until the element knows better
   */
  constructor(video, { clock, commit, canControl = () => true, duration = NaN }) {
    // clock: {now(): server epoch ms, oneWay: ms to the server, jitter: ms of its own error}
    super();
    this.video = video;
    this.clock = clock;
    this.commit = commit;
    this.canControl = canControl;
    this.knownDuration = duration;
    this.state = null;
    this.queued = null;
    this.inflight = false;
    this.stash = null;
    this.ownSeek = null;
    this.userSeekAt = 0;
    this.seekingFrom = null;
    this.holding = false;
    this.playPending = false;
    this.drift = null;
    this.recent = [];
    this.trace = null; // an array: every steering tick is recorded there (the bench sets it)
    this.events = null; // an array: the element's events and the changes shared (the bench sets it)
    this.landPaused = false;
    this.stampDelay = new StampDelay(); // from sending a change to the server stamping it
    this.steering = new Steering(loadLearned());
    video.addEventListener("seeking", () => this.seeking());
    // What the element's last play/pause event said: `paused` flips at once, its event comes a
    // task later, and a tick in between must not take a viewer's pause or play for one to undo
    // (it did: the viewer who paused restarted its element and shared a play, the one who played
    // paused it and shared a pause). A new source pauses the element without a pause event.
    this.eventPlaying = false;
    this.unannounced = null; // performance.now() when `paused` was seen ahead of its event
    video.addEventListener("play", () => (this.eventPlaying = true));
    for (const type of ["pause", "emptied"]) {
      video.addEventListener(type, () => (this.eventPlaying = false));
    }
    for (const type of ["play", "pause", "seeked"]) {
      video.addEventListener(type, () => this.local(type));
    }
    for (const type of ["loadedmetadata", "canplay"]) {
      video.addEventListener(type, () => this.tick());
    }
    for (const type of ["seeking", "seeked", "waiting", "playing", "canplay", "canplaythrough"]) {
      video.addEventListener(type, () => this.note(type, video.readyState));
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    addEventListener("pagehide", () => saveLearned(this.steering.learned()));
  }

  get duration() {
    return Number.isFinite(this.video.duration) ? this.video.duration : this.knownDuration;
  }

  /** Where the room is now (seconds), or null before the first state. */
  expected(at = this.clock.now()) {
    const s = this.state;
    if (!s) return null;
    let position = s.timestamp;
    if (s.playing) position += (Math.max(0, at - s.serverTime) / 1000) * s.rate;
    if (Number.isFinite(this.duration)) position = Math.min(position, this.duration);
    return Math.max(0, position);
  }

  /** A state from the subscription. `resync`: the first message of a (re)subscription. */
  receive(event, { resync = false } = {}) {
    const incoming = normalise(event);
    this.note("receive", incoming.timestamp, incoming.playing, incoming.serverTime, incoming.version);
    if (this.inflight || this.queued) {
      // Until our own change is answered we cannot tell whether this is its echo: hold the newest.
      if (!this.stash || resync || incoming.version > this.stash.incoming.version) {
        this.stash = { incoming, resync };
      }
      return;
    }
    if (!resync && this.state && incoming.version <= this.state.version) return;
    const previous = this.state;
    this.state = incoming;
    this.emit("remote", { state: incoming, previous, resync });
    this.tick();
  }

  /** `seeking` comes before the element settles: mark a viewer's seek so no tick undoes it. */
  seeking() {
    if (this.holding) return;
    const target = this.ownSeek;
    if (target === null || Math.abs(this.video.currentTime - target) >= OWN_SEEK) {
      const position = this.video.currentTime;
      // Where nothing is buffered yet the element waits for the network as well, as a
      // follower's seek there does: its lag is the fetch's.
      const kind = this.buffered(position) ? "seek" : "fetch";
      this.userSeekAt = performance.now();
      this.seekingFrom = { at: this.userSeekAt, position, kind };
      this.note("own-seek", kind);
      if (!this.video.paused) this.expectLanding(kind, position);
    }
  }

  local(type) {
    const video = this.video;
    if (this.holding) return;
    const shared = this.state;
    if (type === "seeked") {
      const target = this.ownSeek;
      const byViewer = this.userSeekAt !== 0;
      this.ownSeek = null;
      this.userSeekAt = 0;
      if (!byViewer && target !== null && Math.abs(video.currentTime - target) < OWN_SEEK) return;
      const want = this.expected();
      if (want !== null && Math.abs(video.currentTime - want) < USER_SEEK) return;
      const playing = shared ? shared.playing : !video.paused;
      const from = this.seekingFrom ?? { at: performance.now(), position: video.currentTime };
      this.seekingFrom = null;
      const lag = this.steering.lags[from.kind ?? "seek"];
      const moving = playing ? { since: from.at, lag } : null;
      this.send(video.currentTime, playing, moving);
    } else if (type === "play") {
      if (shared?.playing) return; // we started it to follow the room
      const since = this.expectLanding("play", video.currentTime);
      this.send(video.currentTime, true, { since, lag: this.steering.lags.play });
    } else if (type === "pause") {
      if (!shared?.playing || video.ended) return; // following the room, or reaching the end
      this.landPaused = true; // show the frame everyone else will show
      this.send(video.currentTime, false);
    }
  }

  /**
   * Share a change. `moving` (playing): the element was told to move at `since` (performance.now())
   * and stands still `lag` s from then (a seek that took longer is over: it moves now); the server
   * stamps the change `stampDelay` ms later (measured on earlier changes; one way at first), so
   * the timestamp sent is where the element is by then.
   */
  send(timestamp, playing, moving = null) {
    if (!this.canControl()) {
      this.emit("denied", {});
      this.tick();
      return;
    }
    if (Number.isFinite(this.duration)) timestamp = Math.min(timestamp, this.duration);
    const previous = this.state;
    const base = previous ?? { videoId: null, rate: 1, version: 0, userId: null, username: null };
    let serverTime = this.clock.now();
    if (moving) {
      const oneWay = this.stampDelay.value ?? (this.clock.oneWay || 0);
      const rate = base.rate || 1;
      const still = Math.max(0, moving.lag - (performance.now() - moving.since) / 1000);
      timestamp += (oneWay / 1000 - still) * rate;
      timestamp = Math.max(0, timestamp);
      serverTime += oneWay;
    }
    this.note("send", timestamp, playing, serverTime, moving?.lag ?? null, this.stampDelay.value);
    // Optimistic: the room is where we put it, so the ticks do not pull us back meanwhile.
    this.state = { ...base, timestamp, playing, serverTime, mine: true };
    this.emit("local", { state: this.state, previous });
    this.queued = { timestamp, playing, at: serverTime };
    if (!this.inflight) this.flush();
  }

  async flush() {
    this.inflight = true;
    let failed = null;
    while (this.queued) {
      const { timestamp, playing, at } = this.queued;
      this.queued = null;
      try {
        const sentAt = this.clock.now();
        const answer = normalise(await this.commit(timestamp, playing, at));
        this.stampDelay.learn(answer.serverTime - sentAt);
        this.note("answer", answer.timestamp, answer.playing, answer.serverTime, sentAt);
        if (!this.queued && answer.version >= (this.state?.version ?? 0)) {
          this.state = { ...answer, mine: true };
        } else if (this.state) {
          this.state.version = Math.max(this.state.version, answer.version);
        }
        this.emit("committed", { state: answer });
        failed = null;
      } catch (error) {
        failed = error;
      }
    }
    this.inflight = false;
    const stash = this.stash;
    this.stash = null;
    if (stash) this.receive(stash.incoming, { resync: stash.resync || failed !== null });
    else this.tick(); // a landing held for this answer is judged against it now
    if (failed) this.emit("failed", { error: failed });
  }

  /** Pause syncing while the source changes (a quality switch); resumes on loadedmetadata. */
  switchSource(url) {
    const video = this.video;
    this.holding = true;
    this.userSeekAt = 0;
    const resume = () => {
      this.holding = false;
      this.tick();
    };
    video.addEventListener("loadedmetadata", resume, { once: true });
    video.src = url;
    video.load();
  }

  tick() {
    const video = this.video;
    const s = this.state;
    if (!s || this.holding || video.readyState < HAVE_METADATA) return this.report(null);
    const want = this.expected();
    const atEnd = Number.isFinite(this.duration) && want >= this.duration - 0.05;
    if (video.paused === this.eventPlaying) {
      const now = performance.now();
      this.unannounced ??= now;
      if (now - this.unannounced < EVENT_WITHIN_MS) return this.report(this.drift);
    }
    this.unannounced = null;
    if (s.playing && video.paused && !atEnd) {
      // A start announced ahead (a party's effectiveAt): stand on its frame until then.
      const early = s.serverTime - this.clock.now() - this.steering.lags.start * 1000;
      if (early <= 0) return this.start();
      clearTimeout(this.startTimer);
      this.startTimer = setTimeout(() => this.tick(), early);
      if (!video.seeking && Math.abs(video.currentTime - s.timestamp) > EXACT) this.seek(s.timestamp);
      return this.report(video.currentTime - s.timestamp);
    }
    if (!s.playing && !video.paused) {
      video.pause();
      this.landPaused = true;
    }
    const viewerSeeking = performance.now() - this.userSeekAt < USER_SEEK_GRACE_MS;
    if (video.seeking || viewerSeeking) return this.report(this.drift);
    const drift = video.currentTime - want;
    if (!s.playing || video.paused) {
      this.steering.reset();
      this.setRate(s.rate);
      if (!s.playing && this.landPaused) {
        // Chromium skips a seek to where a paused element already is, leaving whatever frame it
        // showed when it stopped (often the next one): step off by a hair, the tick comes back.
        this.landPaused = false;
        this.seek(want + (want + 2 * EXACT > this.duration ? -2 * EXACT : 2 * EXACT));
      } else if (!s.playing && Math.abs(drift) > EXACT) {
        this.seek(want); // exactly: the same frame on every screen
      }
      return this.report(drift);
    }
    if (video.readyState < HAVE_FUTURE_DATA) return this.report(drift); // buffering
    const decision = this.steering.decide({
      at: performance.now(),
      position: video.currentTime,
      error: drift,
      rate: s.rate,
      clockJitter: this.clockError(),
      stamped: !this.inflight,
    });
    const { nudge } = decision;
    const seek = decision.seek ? 1 : null;
    const { offset, jitter } = this.clock;
    const at = performance.now();
    this.trace?.push([at, video.currentTime, drift, s.rate, nudge, seek, offset, jitter]);
    if (decision.seek) {
      this.setRate(s.rate);
      this.seekAhead("seek");
    } else {
      this.setRate(s.rate * (1 + decision.nudge), decision.keepPitch ?? true);
    }
    const wake = decision.until ?? decision.next;
    if (wake !== undefined) {
      // A timed pulse: the tick that ends it comes on time, not up to a tick late (and so does
      // the next look at a landing not yet moving).
      clearTimeout(this.pulseTimer);
      this.pulseTimer = setTimeout(() => this.tick(), Math.max(0, wake - at));
    }
    return this.report(drift);
  }

  /**
   * How far off the clock's offset may be (s): the spread of the samples it is the median of,
   * over the square root of their number (a median's standard error). The spread itself (5-8 ms
   * through the emulated link) is how far one sample may be off; taken as the offset's error it
   * set 25 ms dead bands there.
   */
  clockError() {
    const { jitter, used } = this.clock;
    if (!Number.isFinite(jitter)) return 0;
    return (MEDIAN_ERROR * jitter) / Math.sqrt(Math.max(1, Number(used) || 1)) / 1000;
  }

  /** The room plays and the element does not: start it where the room will be once it moves. */
  start() {
    const video = this.video;
    if (this.playPending) return this.report(this.drift);
    this.steering.reset();
    this.setRate(this.state.rate);
    this.seekAhead("start");
    this.play();
    return this.report(this.drift);
  }

  /** Seek to where the room will be once the element moves again, by this page's lag for it. */
  seekAhead(kind) {
    const lags = this.steering.lags;
    let to = this.expected(this.clock.now() + lags[kind] * 1000);
    if (!this.buffered(to)) {
      kind = "fetch";
      to = this.expected(this.clock.now() + lags.fetch * 1000);
    }
    this.expectLanding(kind, to);
    this.seek(to);
  }

  /** The element starts moving from `from` soon: judged (and its lag learned) once it has. */
  expectLanding(kind, from) {
    const at = performance.now();
    this.steering.expectLanding(kind, from, at);
    // The first tick that may judge it comes then, not up to a tick later: what the landing
    // missed by is mended that much sooner.
    clearTimeout(this.landingTimer);
    this.landingTimer = setTimeout(() => this.tick(), LANDING_AFTER_MS + 1);
    return at;
  }

  buffered(at) {
    const ranges = this.video.buffered;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) <= at && at + BUFFERED_AHEAD <= ranges.end(i)) return true;
    }
    return false;
  }

  seek(to) {
    this.ownSeek = to;
    this.video.currentTime = to;
  }

  /** `keepPitch` false (a landing's pulse): Chromium then changes the rate without a jump. */
  setRate(rate, keepPitch = true) {
    const video = this.video;
    // The pitch is let go before the rate leaves the room's and kept again once it is back.
    if (!keepPitch && video.preservesPitch) video.preservesPitch = false;
    if (video.playbackRate !== rate) video.playbackRate = rate;
    if (keepPitch && video.preservesPitch === false) video.preservesPitch = true;
  }

  play() {
    if (this.playPending) return;
    this.playPending = true;
    this.video
      .play()
      .catch((error) => {
        console.warn(`play() refused: ${error?.name} ${error?.message}`);
        // Autoplay rules: follow the room muted rather than not at all.
        if (error?.name === "NotAllowedError" && !this.video.muted) {
          this.video.muted = true;
          this.emit("muted", {});
        }
      })
      .finally(() => {
        this.playPending = false;
      });
  }

  report(drift) {
    this.drift = drift;
    if (drift !== null && Math.abs(drift) < IN_SYNC) {
      this.recent.push(drift);
      if (this.recent.length > SPREAD_TICKS) this.recent.shift();
    }
    this.emit("drift", { drift, accuracy: this.accuracy() });
  }

  /**
   * How far from the shared position this viewer is, as far as this page can tell (ms): the RMS
   * of its recent errors combined with the clock's own error. A party's member list can show the
   * same figure for each member.
   */
  accuracy() {
    const n = this.recent.length;
    const rms = n ? Math.sqrt(this.recent.reduce((sum, d) => sum + d * d, 0) / n) * 1000 : NaN;
    const clock = Number.isFinite(this.clock.jitter) ? this.clock.jitter : 0;
    return {
      errorMs: this.drift === null ? NaN : this.drift * 1000,
      spreadMs: Math.sqrt(rms * rms + clock * clock),
      clockMs: clock,
      roundTripMs: this.clock.roundTrip,
    };
  }

  /** The bench's log: [performance.now(), server time, currentTime, type, ...details]. */
  note(type, ...details) {
    this.events?.push([performance.now(), this.clock.now(), this.video.currentTime, type, ...details]);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  stop() {
    clearInterval(this.timer);
    clearTimeout(this.startTimer);
    clearTimeout(this.pulseTimer);
    clearTimeout(this.landingTimer);
    saveLearned(this.steering.learned());
  }
}

function loadLearned() {
  try {
    return JSON.parse(localStorage.getItem(LEARNED_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function saveLearned(learned) {
  try {
    localStorage.setItem(LEARNED_KEY, JSON.stringify(learned));
  } catch {
    // private mode or full: the next visit learns again
  }
}
