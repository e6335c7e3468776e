// The watch page inside a party: its playhead (through the sync engine), members, ready reports,
// host controls, the invite link and a premiere's countdown. Everything users wrote (names) is
// put on the page as text, never as HTML.
import { formatTime } from "./api.js";
import {
  ApiError,
  api,
  forget,
  memberGraphQL,
  membership,
  playbackState,
  socketUrl,
} from "./partyapi.js";
import { PartySocket } from "./partysocket.js";
import { IN_SYNC, plusMinus } from "./sync.js";

const HAVE_FUTURE_DATA = 3;
const AT_TARGET_S = 0.4; // inside the server's 0.5 s "ready here" tolerance
const READY_TOLERANCE_S = 0.5; // the server's: a READY member this close to the target is done
const REPORT_EVERY_MS = 400; // at most this often: 25 in 10 s, under the server's 30 per member
const OFFSET_EVERY_MS = 2000; // the sync offset goes to the members at most this often...
const OFFSET_CHANGE = 0.2; // ...and only when it moved by this fraction of itself (or 2 ms)
const MAX_OFFSET_MS = 60000; // the server's bound on a reported offset
const ROLES = { HOST: "host", COHOST: "cohost", MEMBER: "member", GUEST: "guest" };
const PLAYER = { READY: "ready", BUFFERING: "buffering", IDLE: "idle" };

const $ = (id) => document.getElementById(id);

function element(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  return node;
}

export class PartyRoom extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.partyId
   * @param {HTMLVideoElement} options.video
   * @param {{now(): number}} options.clock  server time (epoch ms)
   * @param {string|null} options.viewerId  the signed-in account, if any
   */
  constructor({ partyId, video, clock, viewerId }) {
    super();
    this.partyId = partyId;
    this.video = video;
    this.clock = clock;
    this.viewerId = viewerId;
    const held = membership(partyId);
    this.token = held?.token ?? null;
    this.me = held?.memberId ?? null;
    this.party = null;
    this.members = new Map();
    this.playback = null;
    this.player = null;
    this.socket = null;
    this.reported = null;
    this.reportTimer = null;
    this.lastReportAt = 0;
    this.offsetMs = NaN; // how far this player is from the shared position (ms), as measured
    this.reportedOffset = null;
    this.countdown = null;
    this.over = false;
  }

  /** The sync engine this party steers (its commit and canControl come from here). */
  attach(player) {
    this.player = player;
    for (const type of ["canplay", "canplaythrough", "waiting", "seeking", "seeked", "playing"]) {
      this.video.addEventListener(type, () => this.report());
    }
    this.video.addEventListener("loadeddata", () => this.report());
    player.addEventListener("drift", ({ detail }) => this.measured(detail));
    setInterval(() => this.reportOffset(), OFFSET_EVERY_MS);
  }

  /**
   * The sync engine's latest error: what this member's row shows everyone. In sync, the
   * spread its own indicator shows as "±N ms"; catching up, how far off it is.
   */
  measured({ drift, accuracy }) {
    if (drift === null) return;
    this.offsetMs = Math.abs(drift) < IN_SYNC ? accuracy.spreadMs : Math.abs(drift) * 1000;
  }

  async start() {
    $("party").hidden = false;
    $("party-create")?.remove();
    $("signin-hint")?.remove();
    try {
      const party = await api("GET", `/api/parties/${this.partyId}`, undefined, this.token);
      this.showParty(party);
      $("invite-link").value = party.invite_url;
      if (party.state === "ENDED") return this.ended();
    } catch (error) {
      return this.refused(error);
    }
    this.setUpShare();
    this.setUpHostControls();
    this.socket = new PartySocket({
      url: socketUrl(this.token),
      partyId: this.partyId,
      onFrame: (frame) => this.frame(frame),
      onStatus: (status, detail) => this.socketStatus(status, detail),
    });
    setInterval(() => this.tickCountdown(), 250);
  }

  refused(error) {
    const gone = error instanceof ApiError && [401, 403, 404, 410].includes(error.status);
    if (gone) forget(this.partyId);
    this.end(
      error?.status === 410 ? "This party has ended." : `Cannot join this party: ${error.message}`,
    );
  }

  /** Stop following the party; the page stays with the message. */
  end(message) {
    this.over = true;
    this.socket?.stop();
    if (this.player) {
      this.player.stop();
      this.player.state = null; // nothing to follow any more: the element is the viewer's own
    }
    this.video.pause();
    $("party-notice").textContent = message;
    $("party-notice").hidden = false;
    $("host-controls").hidden = true;
    this.dispatchEvent(new CustomEvent("over", { detail: { message } }));
  }

  /**
   * The party is over for everyone: its members may replay it (the log is theirs to read, with
   * the member token this tab keeps for that).
   */
  ended() {
    this.end("This party has ended.");
    const link = $("replay-link");
    const video = document.getElementById("watch").dataset.videoId;
    link.href = `/watch/${encodeURIComponent(video)}?party=${encodeURIComponent(this.partyId)}&replay=1`;
    link.hidden = false;
  }

  socketStatus(status, detail) {
    this.dispatchEvent(new CustomEvent("status", { detail: { status, ...detail } }));
    if (status === "disconnected" && detail?.code === 4403 && !this.over) {
      // Removed (the kick frame came first and ended the page), or the token was refused.
      this.socket.stop();
      forget(this.partyId);
      this.end("You are no longer in this party.");
    }
  }

  // -- frames ----------------------------------------------------------------------------

  frame(frame) {
    switch (frame.type) {
      case "party:snapshot":
        this.showParty(frame.party);
        this.dispatchEvent(new CustomEvent("snapshot", { detail: frame.party }));
        this.receive(frame.party.playback, true);
        this.reported = null;
        this.report();
        break;
      case "party:playback":
        this.receive(frame, false);
        break;
      case "party:member_joined":
      case "party:member_updated":
        this.upsert(frame.member);
        break;
      case "party:member_left":
        if (frame.kicked && frame.member.id === this.me) {
          forget(this.partyId);
          return this.end("The host removed you from this party.");
        }
        if (frame.kicked || frame.gone) {
          // left or kicked: no longer a member (an offline one stays, `gone` false)
          this.members.delete(frame.member.id);
          this.renderMembers();
        } else {
          this.upsert(frame.member);
        }
        break;
      case "party:ended":
        this.ended();
        break;
      case "error":
        if (frame.party_id === this.partyId && !frame.request && frame.code === "PARTY_ENDED") {
          this.ended(); // it ended between the page's look and the subscription
        } else if (frame.party_id === this.partyId && !frame.request) {
          // the subscription itself was refused
          forget(this.partyId);
          this.end(`Cannot join this party: ${frame.message}`);
        } else {
          this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
        }
        break;
      default:
        this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    }
  }

  showParty(party) {
    this.party = party;
    this.members = new Map(party.members.map((m) => [m.id, m]));
    if (!this.me && this.viewerId) {
      this.me = party.members.find((m) => m.user?.id === this.viewerId)?.id ?? null;
    }
    $("party-name").textContent = party.name;
    $("control-mode").value = party.control;
    this.playback = party.playback;
    this.renderMembers();
    this.renderPlayback();
  }

  receive(playback, resync) {
    this.playback = playback;
    this.player?.receive(playbackState(playback), { resync });
    this.renderPlayback();
    this.describePlayback();
    this.report();
    this.dispatchEvent(new CustomEvent("playback", { detail: playback }));
  }

  upsert(member) {
    this.members.set(member.id, member);
    this.renderMembers();
    this.renderPlayback();
  }

  // -- what the page shows --------------------------------------------------------------

  get self() {
    return this.members.get(this.me) ?? null;
  }

  get isHost() {
    return this.self?.role === "HOST";
  }

  canControl() {
    if (this.over || !this.self) return false;
    return this.party?.control === "EVERYONE" || ["HOST", "COHOST"].includes(this.self.role);
  }

  /** Members the barrier still waits for, as far as their reports show. */
  waitingFor() {
    const playback = this.playback;
    if (!playback || playback.state !== "WAITING") return [];
    return playback.waiting_for
      .map((m) => this.members.get(m.id))
      .filter((m) => {
        if (!m || !m.online || m.player === "IDLE") return false;
        const here = Math.abs((m.position ?? -1) - playback.timestamp) <= READY_TOLERANCE_S;
        return !(m.player === "READY" && here);
      });
  }

  renderPlayback() {
    const waiting = this.waitingFor();
    const status = $("party-waiting");
    if (waiting.length) {
      status.textContent = `Waiting for ${waiting.length}…`;
      status.title = waiting.map((m) => m.display_name).join(", ");
      status.hidden = false;
    } else {
      status.textContent = "";
      status.hidden = true;
    }
    this.tickCountdown();
  }

  /** Who moved the playhead last (on a change of it only: a denial shown meanwhile stays). */
  describePlayback() {
    const playback = this.playback;
    const change = $("last-change");
    if (playback?.member_id && change) {
      const who = playback.member_id === this.me ? "You" : this.members.get(playback.member_id);
      const name = typeof who === "string" ? who : (who?.display_name ?? "Someone");
      const what = {
        WAITING: "started",
        PLAYING: "played from",
        PAUSED: playback.effective_at ? "scheduled" : "paused at",
      }[playback.state];
      if (what) change.textContent = `${name} ${what} ${formatTime(playback.timestamp)}`;
    }
  }

  tickCountdown() {
    const playback = this.playback;
    const node = $("party-countdown");
    const at = playback?.effective_at;
    const premiere = playback && playback.state === "PAUSED" && at;
    const left = premiere ? (at - this.clock.now()) / 1000 : 0;
    if (!premiere || left <= 0 || this.over) {
      node.hidden = true;
      return;
    }
    node.hidden = false;
    const text = `Starts in ${formatTime(Math.ceil(left))}`;
    if (node.textContent !== text) node.textContent = text;
  }

  renderMembers() {
    const list = $("members");
    const rows = [...this.members.values()].sort(
      (a, b) => (b.online - a.online) || a.joined_at.localeCompare(b.joined_at),
    );
    list.replaceChildren(...rows.map((m) => this.memberRow(m)));
    $("member-count").textContent = `(${rows.filter((m) => m.online).length} online)`;
    $("host-controls").hidden = !this.isHost || this.over;
    this.dispatchEvent(new CustomEvent("members", {}));
  }

  memberRow(member) {
    const row = element("li", { attrs: { "data-member-id": member.id } });
    row.dataset.online = String(member.online);
    row.dataset.player = member.player;
    row.dataset.role = member.role;
    const dot = element("span", {
      className: "dot",
      text: "●",
      attrs: { title: member.online ? "online" : "offline" },
    });
    dot.dataset.online = String(member.online);
    const name = element("span", { className: "name", text: member.display_name });
    const you = member.id === this.me ? element("span", { className: "you", text: " (you)" }) : "";
    const role = element("span", { className: "role", text: ROLES[member.role] ?? member.role });
    const detail = [PLAYER[member.player] ?? member.player];
    const title = [];
    if (Number.isFinite(member.offset_ms)) {
      detail.push(plusMinus(member.offset_ms));
      title.push(`${plusMinus(member.offset_ms)} from the shared position`);
      row.dataset.offsetMs = String(member.offset_ms);
    }
    if (Number.isFinite(member.latency_ms)) {
      detail.push(`${Math.round(member.latency_ms)} ms rtt`);
      title.push(`round trip ${Math.round(member.latency_ms)} ms`);
    }
    const state = element("span", { className: "state", text: detail.join(" · ") });
    if (title.length) state.title = title.join("; ");
    row.append(dot, name, you, role, state);
    if (this.isHost && member.id !== this.me && !this.over) row.append(this.memberActions(member));
    return row;
  }

  memberActions(member) {
    const actions = element("span", { className: "actions" });
    const name = member.display_name;
    if (member.role !== "HOST") {
      const promote = member.role !== "COHOST";
      const role = element("button", {
        text: promote ? "Make cohost" : "Make member",
        className: "small",
        attrs: { type: "button", "aria-label": `${promote ? "Make cohost" : "Make member"}: ${name}` },
      });
      // A guest cannot become a plain member: demoted, it is a guest again only by rejoining.
      if (!promote && !member.user) role.disabled = true;
      role.addEventListener("click", () =>
        this.hostCall("PUT", `/members/${member.id}/role`, {
          role: promote ? "COHOST" : "MEMBER",
        }),
      );
      actions.append(role);
    }
    const kick = element("button", {
      text: "Kick",
      className: "small danger",
      attrs: { type: "button", "aria-label": `Kick ${name}` },
    });
    kick.addEventListener("click", () => this.hostCall("DELETE", `/members/${member.id}`));
    actions.append(kick);
    return actions;
  }

  /** A GraphQL query as this member (its token, or the session cookie). */
  graphql(query, variables) {
    return memberGraphQL(query, variables, this.token);
  }

  async hostCall(method, path, body) {
    const error = $("host-error");
    error.textContent = "";
    try {
      return await api(method, `/api/parties/${this.partyId}${path}`, body, this.token);
    } catch (failure) {
      error.textContent = failure.message;
      return null;
    }
  }

  setUpHostControls() {
    $("control-mode").addEventListener("change", (event) => {
      this.hostCall("PATCH", "", { control: event.target.value });
    });
    $("end-party").addEventListener("click", () => this.hostCall("POST", "/end"));
    $("premiere").addEventListener("click", () => {
      const minutes = Number($("premiere-minutes").value);
      if (!(minutes > 0)) return;
      this.hostCall("POST", "/schedule", {
        at: Math.round(this.clock.now() + minutes * 60000),
        timestamp: this.video.currentTime,
      });
    });
    $("leave-party").addEventListener("click", async (event) => {
      event.preventDefault();
      const href = event.currentTarget.href;
      try {
        await api("POST", `/api/parties/${this.partyId}/leave`, undefined, this.token);
      } catch {
        // already gone (ended, kicked): leaving the page is all that is left
      }
      forget(this.partyId);
      location.assign(href);
    });
  }

  setUpShare() {
    const button = $("share");
    const link = $("invite-link");
    const result = $("share-result");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(link.value);
        result.textContent = "Link copied.";
      } catch {
        // No clipboard API (plain HTTP on a LAN address is not a secure context): select it.
        link.select();
        result.textContent = document.execCommand("copy")
          ? "Link copied."
          : "Copy the selected link and send it.";
      }
    });
  }

  // -- the playhead ---------------------------------------------------------------------

  /** Share a change of the playhead; resolves with the new state as the sync engine reads it. */
  async commit(timestamp, playing) {
    const answer = await api(
      "PUT",
      `/api/parties/${this.partyId}/time`,
      { timestamp, playing },
      this.token,
    );
    return playbackState(answer);
  }

  /** Back to the party's real state (a refused change). */
  resync() {
    if (this.playback) this.player?.receive(playbackState(this.playback), { resync: true });
  }

  /** READY or BUFFERING from the element, sent when it changes (and once at the target). */
  report() {
    if (this.over || !this.socket?.connected) return;
    const wait = REPORT_EVERY_MS - (performance.now() - this.lastReportAt);
    if (wait > 0) {
      clearTimeout(this.reportTimer);
      this.reportTimer = setTimeout(() => this.report(), wait);
      return;
    }
    const video = this.video;
    const state = this.playerState();
    const playback = this.playback;
    const asked = playback?.state === "WAITING" && playback.waiting_for.some((m) => m.id === this.me);
    const there = asked && Math.abs(video.currentTime - playback.timestamp) <= AT_TARGET_S;
    const key = asked ? `${state}:${playback.version}:${there}` : state;
    if (key === this.reported) return;
    this.reported = key;
    this.send(state);
  }

  /** The sync offset, when it moved enough since the members last heard it (not while waiting). */
  reportOffset() {
    if (this.over || !this.socket?.connected) return;
    const offset = this.offsetToReport();
    if (offset === null) return;
    const last = this.reportedOffset;
    if (last !== null && Math.abs(offset - last) < Math.max(2, last * OFFSET_CHANGE)) return;
    if (performance.now() - this.lastReportAt < REPORT_EVERY_MS) return; // the next round
    const state = this.playerState();
    this.reported = state; // what the server now has: report() sends only a change from it
    this.send(state);
  }

  playerState() {
    const ready = this.video.readyState >= HAVE_FUTURE_DATA && !this.video.seeking;
    return ready ? "READY" : "BUFFERING";
  }

  /** The offset a report carries (whole ms), or null: none measured yet, or the barrier holds. */
  offsetToReport() {
    if (!Number.isFinite(this.offsetMs) || this.playback?.state === "WAITING") return null;
    return Math.min(MAX_OFFSET_MS, Math.round(this.offsetMs));
  }

  /** A `party:ready` report: the player's state and position, and its offset once measured. */
  send(state) {
    const frame = { type: "party:ready", state, position: this.video.currentTime };
    const offset = this.offsetToReport();
    if (offset !== null) {
      frame.offset_ms = offset;
      this.reportedOffset = offset;
    }
    this.lastReportAt = performance.now();
    this.socket.send(frame);
  }
}
