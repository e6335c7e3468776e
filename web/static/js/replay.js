// "Replay this party": an ended party played back on this page only. Its whole log is paged from
// GraphQL's Party.events (members only, as the log is); nothing goes out after that: no socket,
// no report, nobody else sees anything. The replay has a clock of its own: 0 is the log's first
// event, and it runs with the local clock at 1× or 2×. The video follows the recorded playhead
// (each playback version from its server time), messages, reactions, joins, leaves and role
// changes appear when their server time comes, and moving the replay's position shows the log up
// to there. Everything members wrote is put on the page as text.
import { formatTime } from "./api.js";
import { element, floatReaction, fromGraphQL } from "./chat.js";
import { memberGraphQL, membership } from "./partyapi.js";

const PAGE = 100; // the most Party.events gives at once
const MEMBER = "id displayName role online";
const MESSAGE = "id body author { id displayName } mediaTime createdAt deleted";
const LOG = `query PartyLog($id: ID!, $first: Int, $after: String) {
  party(id: $id) { name events(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { seq serverTime mediaTime node { __typename
      ... on PlaybackChanged { playback { timestamp playing rate version state } }
      ... on MemberJoined { member { ${MEMBER} } }
      ... on MemberLeft { member { ${MEMBER} } kicked }
      ... on MemberUpdated { member { ${MEMBER} } }
      ... on ChatMessageAdded { message { ${MESSAGE} replyTo { ${MESSAGE} } } }
      ... on ReactionAdded { reaction { emoji author { id displayName } mediaTime } }
    } }
  } }
}`;
const TICK_MS = 100;
const DRIFT_S = 0.3; // a playing video further than this from the recorded playhead is moved
const ROLES = { HOST: "host", COHOST: "cohost", MEMBER: "member", GUEST: "guest" };

const $ = (id) => document.getElementById(id);

/**
 * The log as the replay shows it: the playhead's versions, and the lines (messages, reactions,
 * system lines), each with `at` (server epoch ms) and in the order they are due. Presence and
 * player reports that change nothing worth a line are left out.
 */
export function readLog(edges) {
  const versions = [];
  const lines = [];
  const members = new Map(); // id → {role, online} as the log has it so far
  const system = (edge, text) => lines.push({ ...base(edge), kind: "system", text });
  for (const edge of edges) {
    const node = edge.node;
    switch (node.__typename) {
      case "PlaybackChanged":
        versions.push({ ...base(edge), ...node.playback });
        break;
      case "MemberJoined":
        members.set(node.member.id, { role: node.member.role, online: true });
        system(edge, `${node.member.displayName} joined`);
        break;
      case "MemberLeft": {
        const known = members.get(node.member.id);
        if (known) known.online = false;
        const verb = node.kicked ? "was removed" : "left";
        system(edge, `${node.member.displayName} ${verb}`);
        break;
      }
      case "MemberUpdated": {
        const member = node.member;
        const known = members.get(member.id) ?? { role: member.role, online: member.online };
        if (known.role !== member.role) {
          system(edge, `${member.displayName} is now ${ROLES[member.role] ?? member.role}`);
        } else if (!known.online && member.online) {
          system(edge, `${member.displayName} is back`);
        }
        members.set(member.id, { role: member.role, online: member.online });
        break;
      }
      case "ChatMessageAdded":
        lines.push({ ...base(edge), kind: "message", message: fromGraphQL(node.message) });
        break;
      case "ReactionAdded": {
        const { emoji, author } = node.reaction;
        const reaction = { emoji, author: { id: author.id, display_name: author.displayName } };
        lines.push({ ...base(edge), kind: "reaction", reaction });
        break;
      }
      case "PartyEnded":
        system(edge, "The party ended");
        break;
    }
  }
  // A start after the ready barrier holds from a later server time than the events after it.
  const due = (a, b) => a.at - b.at || a.seq - b.seq;
  return { versions: versions.sort(due), lines: lines.sort(due) };
}

function base(edge) {
  return { seq: edge.seq, at: edge.serverTime, mediaTime: edge.mediaTime };
}

/**
 * Where the recorded playhead is at server time `at`: the last change in the log's order among
 * those due, run forward. (A start after the barrier is due later than it was logged: a pause
 * logged after it, due earlier, still wins.)
 */
export function playheadAt(versions, at) {
  let current = null;
  for (const version of versions) {
    if (version.at > at) break;
    if (!current || version.seq > current.seq) current = version;
  }
  if (!current) return { version: 0, position: 0, playing: false, rate: 1 };
  const playing = current.playing && current.state === "PLAYING";
  const ran = playing ? ((at - current.at) / 1000) * current.rate : 0;
  return {
    version: current.version,
    position: current.timestamp + ran,
    playing,
    rate: current.rate,
  };
}

export class PartyReplay {
  /**
   * @param {object} options
   * @param {string} options.partyId
   * @param {HTMLVideoElement} options.video
   */
  constructor({ partyId, video }) {
    this.partyId = partyId;
    this.video = video;
    this.token = membership(partyId)?.token ?? null;
    this.root = $("replay");
    this.list = $("replay-log");
    this.toggle = $("replay-toggle");
    this.speedSelect = $("replay-speed");
    this.seekInput = $("replay-seek");
    this.versions = [];
    this.lines = [];
    this.start = 0; // server epoch ms of the first event: the replay's 0
    this.length = 0; // ms, to the last event
    this.position = 0; // ms into the replay
    this.speed = 1;
    this.playing = false;
    this.anchor = null; // {local: performance.now(), position} while playing
    this.shown = 0; // lines on the page, in due order
    this.sought = null; // the position last set on a video that is held still
    this.timer = null;
  }

  async run() {
    this.showPage();
    let edges;
    try {
      edges = await this.load();
    } catch (error) {
      this.setState("error");
      // An ended party answers anyone not (or no longer) in it so: the log is its members'.
      const outsider = ["PARTY_ENDED", "FORBIDDEN", "UNAUTHENTICATED"].includes(error.code);
      const why = outsider ? "only the party's members may replay it" : error.message;
      $("replay-status").textContent = `Replay unavailable: ${why}.`;
      return;
    }
    const { versions, lines } = readLog(edges);
    this.versions = versions;
    this.lines = lines;
    // A long party's log runs to tens of thousands of events: no spreading them into arguments.
    const times = edges.map((edge) => edge.serverTime);
    this.start = times.reduce((a, b) => Math.min(a, b), times[0] ?? 0);
    this.length = times.reduce((a, b) => Math.max(a, b), this.start) - this.start;
    this.root.dataset.length = String(Math.round(this.length));
    this.root.dataset.start = String(this.start);
    this.seekInput.max = String(Math.round(this.length));
    this.seekInput.disabled = false;
    this.toggle.disabled = false;
    const count = lines.filter((line) => line.kind === "message").length;
    const long = formatTime(this.length / 1000);
    $("replay-status").textContent = `${count} message${count === 1 ? "" : "s"}, ${long} long.`;
    this.setUpControls();
    this.seek(0);
    this.setState("ready");
  }

  /** The replay in place of the live party: no player controls of its own, no party panel. */
  showPage() {
    $("party").hidden = false;
    $("party-live").hidden = true;
    this.root.hidden = false;
    $("party-create")?.remove();
    $("signin-hint")?.remove();
    for (const selector of [".controls", ".syncbar", ".party-status"]) {
      const node = document.querySelector(selector);
      if (node) node.hidden = true;
    }
    this.video.controls = false; // the replay steers it; its own controls are the replay's
    this.video.pause();
    this.setState("loading");
  }

  async load() {
    const edges = [];
    let after = null;
    for (;;) {
      const data = await memberGraphQL(LOG, { id: this.partyId, first: PAGE, after }, this.token);
      if (!data.party) throw new Error("party not found");
      $("party-name").textContent = `Replay: ${data.party.name}`;
      const page = data.party.events;
      for (const edge of page.edges) edges.push(edge);
      $("replay-status").textContent = `Loading the party's log… ${edges.length} events`;
      if (!page.pageInfo.hasNextPage) return edges;
      after = page.pageInfo.endCursor;
    }
  }

  setUpControls() {
    this.toggle.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.speedSelect.addEventListener("change", () => {
      this.position = this.now();
      if (this.playing) this.anchor = { local: performance.now(), position: this.position };
      this.speed = Number(this.speedSelect.value) || 1;
      this.root.dataset.speed = String(this.speed);
      this.follow();
    });
    this.seekInput.addEventListener("input", () => this.seek(Number(this.seekInput.value)));
  }

  setState(state) {
    this.root.dataset.state = state;
    const text = this.playing ? "Pause replay" : "Play replay";
    if (this.toggle.textContent !== text) this.toggle.textContent = text;
  }

  /** Milliseconds into the replay now. */
  now() {
    if (!this.anchor) return this.position;
    const ran = (performance.now() - this.anchor.local) * this.speed;
    return Math.min(this.length, this.anchor.position + ran);
  }

  play() {
    if (this.position >= this.length) this.seek(0); // from the start again
    this.playing = true;
    this.anchor = { local: performance.now(), position: this.position };
    this.setState("playing");
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  pause(state = "paused") {
    this.position = this.now();
    this.playing = false;
    this.anchor = null;
    clearInterval(this.timer);
    this.follow();
    this.setState(state);
  }

  /** To `position` ms into the replay: the log as it stood then, the video where it was. */
  seek(position) {
    this.position = Math.max(0, Math.min(this.length, position));
    if (this.playing) this.anchor = { local: performance.now(), position: this.position };
    this.list.replaceChildren();
    this.shown = 0;
    this.sought = null;
    this.follow({ quiet: true });
  }

  tick() {
    this.position = this.now();
    this.follow();
    if (this.position >= this.length) this.pause("ended");
  }

  /** The page at the replay's position: due lines added, the video on the recorded playhead. */
  follow({ quiet = false } = {}) {
    const at = this.start + this.position;
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    while (this.shown < this.lines.length && this.lines[this.shown].at <= at) {
      const line = this.lines[this.shown++];
      this.list.append(this.row(line));
      if (line.kind === "reaction" && !quiet && this.playing) floatReaction(line.reaction);
    }
    if (atBottom || quiet) this.list.scrollTop = this.list.scrollHeight;
    this.steer(playheadAt(this.versions, at));
    this.seekInput.value = String(Math.round(this.position));
    this.root.dataset.position = String(Math.round(this.position));
    this.root.dataset.shown = String(this.shown);
    const clock = `${formatTime(this.position / 1000)} / ${formatTime(this.length / 1000)}`;
    $("replay-clock").textContent = clock;
  }

  steer(head) {
    const video = this.video;
    const end = Number.isFinite(video.duration) ? video.duration : Infinity;
    const target = Math.max(0, Math.min(end, head.position));
    this.root.dataset.version = String(head.version);
    this.root.dataset.target = target.toFixed(3);
    const run = this.playing && head.playing && target < end;
    if (run) {
      this.sought = null;
      video.playbackRate = head.rate * this.speed;
      if (Math.abs(video.currentTime - target) > DRIFT_S) video.currentTime = target;
      if (video.paused) {
        video.play().catch((error) => {
          // No sound without a click of the viewer's: muted, then. (A pause since is no refusal.)
          if (error.name !== "NotAllowedError" || !this.playing) return;
          video.muted = true;
          this.follow();
        });
      }
      return;
    }
    if (!video.paused) video.pause();
    if (this.sought !== target) {
      this.sought = target;
      video.currentTime = target;
    }
  }

  row(line) {
    const item = element("li", { className: line.kind });
    item.dataset.seq = String(line.seq);
    item.dataset.kind = line.kind;
    item.dataset.mediaTime = String(line.mediaTime);
    item.dataset.at = String(Math.round(line.at - this.start));
    const time = element("span", { className: "time", text: formatTime(line.mediaTime) });
    if (line.kind === "system") {
      item.append(element("span", { className: "text", text: line.text }), time);
      return item;
    }
    if (line.kind === "reaction") {
      const { emoji, author } = line.reaction;
      item.append(
        element("span", { className: "emoji", text: emoji }),
        " ",
        element("span", { className: "author", text: author.display_name }),
        time,
      );
      return item;
    }
    const message = line.message;
    item.classList.add("message");
    item.dataset.messageId = message.id;
    const head = element("div", { className: "head" });
    const author = element("span", { className: "author", text: message.author.display_name });
    head.append(author, " ", time);
    item.append(head);
    if (message.reply_to) {
      const quoted = message.reply_to;
      const text = quoted.deleted ? "a deleted message" : quoted.body;
      const quote = `↪ ${quoted.author.display_name}: ${text}`;
      item.append(element("p", { className: "quote", text: quote }));
    }
    if (message.deleted) {
      item.classList.add("deleted");
      item.append(element("p", { className: "body", text: "Message deleted" }));
    } else {
      item.append(element("p", { className: "body", text: message.body }));
    }
    return item;
  }
}
