// Keep a <video> on the shared playhead, report the viewer's own play/pause/seek, never echo.
//
// The room's state is {timestamp, playing, rate, serverTime, version}: the position was
// `timestamp` at `serverTime` (server epoch ms) and moves at `rate` while playing. Each tick
// compares the element with where the room is now and corrects the way sync players do:
// small drift by nudging playbackRate, large drift by seeking.

export const SMALL_DRIFT = 0.06; // s: below this, leave the element alone
export const LARGE_DRIFT = 2; // s: at or above this, seek instead of nudging the rate
export const IN_SYNC = 0.25; // s: what the indicator calls "in sync"
const CAUGHT_UP = 0.02; // s: a rate nudge stops once this close
const PAUSED_TOLERANCE = 0.04; // s: about a frame; a paused element is simply put in place
const USER_SEEK = 0.5; // s: a seek landing further than this from the room is the viewer's own
const OWN_SEEK = 0.1; // s: a `seeked` this close to a target we set is our own correction
const SLOW = 0.95;
const FAST = 1.05;
const TICK_MS = 250;
const USER_SEEK_GRACE_MS = 1000; // a viewer's seek is left alone this long for its `seeked`
const HAVE_METADATA = 1;

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
   * @param {(timestamp: number, playing: boolean) => Promise<object>} options.commit
   *   sends updateVideoTimestamp and resolves with the TimestampEvent it returns
   * @param {() => boolean} options.canControl  false: local changes are undone, not sent
   * @param {number} [options.duration]  seconds, until the element knows better
   */
  constructor(video, { clock, commit, canControl = () => true, duration = NaN }) {
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
    this.correcting = 0;
    this.holding = false;
    this.playPending = false;
    this.drift = null;
    video.addEventListener("seeking", () => this.seeking());
    for (const type of ["play", "pause", "seeked"]) {
      video.addEventListener(type, () => this.local(type));
    }
    for (const type of ["loadedmetadata", "canplay"]) {
      video.addEventListener(type, () => this.tick());
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
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
      this.userSeekAt = performance.now();
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
      this.send(video.currentTime, shared ? shared.playing : !video.paused);
    } else if (type === "play") {
      if (shared?.playing) return; // we started it to follow the room
      this.send(video.currentTime, true);
    } else if (type === "pause") {
      if (!shared?.playing || video.ended) return; // following the room, or reaching the end
      this.send(video.currentTime, false);
    }
  }

  send(timestamp, playing) {
    if (!this.canControl()) {
      this.emit("denied", {});
      this.tick();
      return;
    }
    if (Number.isFinite(this.duration)) timestamp = Math.min(timestamp, this.duration);
    const previous = this.state;
    const base = previous ?? { videoId: null, rate: 1, version: 0, userId: null, username: null };
    // Optimistic: the room is where we put it, so the ticks do not pull us back meanwhile.
    this.state = { ...base, timestamp, playing, serverTime: this.clock.now(), mine: true };
    this.emit("local", { state: this.state, previous });
    this.queued = { timestamp, playing };
    if (!this.inflight) this.flush();
  }

  async flush() {
    this.inflight = true;
    let failed = null;
    while (this.queued) {
      const { timestamp, playing } = this.queued;
      this.queued = null;
      try {
        const answer = normalise(await this.commit(timestamp, playing));
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
    if (s.playing && video.paused && !atEnd) this.play();
    else if (!s.playing && !video.paused) video.pause();
    const viewerSeeking = performance.now() - this.userSeekAt < USER_SEEK_GRACE_MS;
    if (video.seeking || viewerSeeking) return this.report(this.drift);
    const drift = video.currentTime - want;
    const size = Math.abs(drift);
    if (!s.playing || size >= LARGE_DRIFT) {
      this.correcting = 0;
      this.setRate(s.rate);
      if (s.playing || size > PAUSED_TOLERANCE) this.seek(want);
    } else if (size >= SMALL_DRIFT || (this.correcting === Math.sign(drift) && size > CAUGHT_UP)) {
      this.correcting = Math.sign(drift);
      this.setRate(s.rate * (drift > 0 ? SLOW : FAST));
    } else {
      this.correcting = 0;
      this.setRate(s.rate);
    }
    return this.report(drift);
  }

  seek(to) {
    this.ownSeek = to;
    this.video.currentTime = to;
  }

  setRate(rate) {
    if (this.video.playbackRate !== rate) this.video.playbackRate = rate;
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
    this.emit("drift", { drift });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  stop() {
    clearInterval(this.timer);
  }
}
