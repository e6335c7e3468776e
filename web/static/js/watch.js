// The watch page: the synced player, its controls and status line.
import { GraphQLError, formatTime, gql } from "./api.js";
import { ServerClock } from "./clock.js";
import { GraphQLSocket, graphqlSocketUrl } from "./gqlws.js";
import { PartyChat } from "./chat.js";
import { PartyRoom } from "./party.js";
import { PartyReplay } from "./replay.js";
import { api } from "./partyapi.js";
import { showProcessing } from "./processing.js";
import { IN_SYNC, plusMinus, SyncPlayer } from "./sync.js";

const FIELDS = "videoId timestamp playing rate serverTime version userId";
const SUBSCRIBE = `subscription Watch($id: ID!) { videoTimestamp(videoId: $id) { ${FIELDS} } }`;
const UPDATE = `mutation Seek($id: ID!, $timestamp: Float!, $playing: Boolean, $at: Float) {
  updateVideoTimestamp(videoId: $id, timestamp: $timestamp, playing: $playing, at: $at) {
    ${FIELDS}
  }
}`;
const CLOCK = "query Clock { serverClock { receivedAt sentAt } }";
const WHO = "query Who($id: ID!) { user(id: $id) { username } }";
const QUALITY_KEY = "cowatch.quality";
const COMMIT_TIMEOUT_MS = 15000; // as long as the same change over HTTP may take
const SKIP_S = 10;

const root = document.getElementById("watch");
const videoId = root.dataset.videoId;
const video = document.getElementById("video");
const indicator = document.getElementById("sync-indicator");
const lastChange = document.getElementById("last-change");
const viewerId = document.body.dataset.viewerId || null;
const signedIn = Boolean(document.body.dataset.viewer);
// Inside a watch party (its invite link lands here): the party's playhead, not the video's room.
const partyId = new URLSearchParams(location.search).get("party");
// Its replay (a member's, once it ended): played on this page alone, without any socket.
const replaying = Boolean(partyId) && new URLSearchParams(location.search).has("replay");

// The handshake carries the session cookie: no token in connection_init. Signed out, the socket
// is anonymous: it follows the video's public room, read-only.
const connectionParams = () => ({});

let rejections = 0;
let onConnected = () => {};
const socket = replaying
  ? null
  : new GraphQLSocket({ url: graphqlSocketUrl(), connectionParams, onStatus: socketStatus });

function showIndicator(state, text, detail = "") {
  if (!indicator) return; // a page still transcoding has no player yet
  indicator.dataset.state = state;
  if (indicator.textContent !== text) indicator.textContent = text;
  indicator.title = detail;
}

function showDrift(detail) {
  if (!socket.connected) return showIndicator("offline", "Reconnecting…");
  if (detail.drift === null) return showIndicator("connecting", "Connecting…");
  const size = Math.abs(detail.drift);
  const { spreadMs, clockMs, roundTripMs } = detail.accuracy;
  const where =
    `${Math.round(size * 1000)} ms ${detail.drift < 0 ? "behind" : "ahead"}; ` +
    `clock ±${clockMs.toFixed(1)} ms, round trip ${Math.round(roundTripMs)} ms`;
  indicator.dataset.drift = detail.drift.toFixed(3);
  indicator.dataset.accuracy = spreadMs.toFixed(1);
  if (size < IN_SYNC) showIndicator("in-sync", `In sync ${plusMinus(spreadMs)}`, where);
  else showIndicator("catching-up", "Catching up", where);
}

function socketStatus(status) {
  if (status === "connected") {
    rejections = 0;
    onConnected();
  } else if (status === "rejected") {
    // The cookie expired or was revoked: one retry (a reconnect may race a fresh login).
    rejections += 1;
    if (rejections > 1) {
      socket.close();
      showIndicator("error", "Not syncing: sign in again");
    }
  } else if (status === "disconnected") {
    window.cowatch?.clock.stop();
    showIndicator("offline", "Reconnecting…");
  }
}

if (root.dataset.status === "PROCESSING" && signedIn && socket) {
  showProcessing(socket, videoId, {
    bar: document.getElementById("transcode-progress"),
    text: document.getElementById("transcode-text"),
    onDone: () => location.reload(),
  });
}

if (video && replaying) {
  const replay = new PartyReplay({ partyId, video });
  window.cowatch = { replay };
  replay.run();
} else if (video) {
  setUpPlayer();
}

function setUpPlayer() {
  const clock = new ServerClock(async () => {
    if (!socket.connected) throw new Error("not connected");
    return (await socket.request(CLOCK)).serverClock;
  });
  const room = partyId ? new PartyRoom({ partyId, video, clock, viewerId }) : null;
  const player = new SyncPlayer(video, {
    clock,
    duration: Number(root.dataset.duration) || NaN,
    canControl: () => (room ? room.canControl() : signedIn),
    commit: room
      ? (timestamp, playing) => room.commit(timestamp, playing)
      : (timestamp, playing, at) => commit({ id: videoId, timestamp, playing, at }),
  });
  window.cowatch = { player, socket, clock, room };
  setUpControls(player);
  if (room) return setUpParty(room, player, clock);
  setUpPartyForm();

  let firstMessage = true;
  let stop = () => {};
  const subscribe = () => {
    stop();
    firstMessage = true;
    stop = socket.subscribe(SUBSCRIBE, { id: videoId }, {
      next(payload) {
        if (payload.errors?.length) {
          showIndicator("error", `Not syncing: ${payload.errors[0].message}`);
          return;
        }
        player.receive(payload.data.videoTimestamp, { resync: firstMessage });
        firstMessage = false;
      },
      error(errors) {
        showIndicator("error", `Not syncing: ${errors?.[0]?.message || "refused"}`);
      },
    });
  };
  onConnected = () => {
    firstMessage = true; // the socket resubscribes by itself; its first message is the state
    clock.start().then(() => player.tick());
  };
  subscribe();

  player.addEventListener("remote", ({ detail }) => describe(detail.state, detail.previous));
  player.addEventListener("local", ({ detail }) => describe(detail.state, detail.previous, true));
  player.addEventListener("failed", ({ detail }) => {
    console.warn("updateVideoTimestamp failed", detail.error);
    lastChange.textContent = `Not shared: ${detail.error.message}`;
    subscribe(); // back to the room's real state
  });
  player.addEventListener("denied", () => {
    lastChange.textContent = "Sign in to control playback for everyone.";
  });
  player.addEventListener("drift", ({ detail }) => showDrift(detail));
}

/** The page follows a party: its socket for the playhead, the GraphQL one for the clock only. */
function setUpParty(room, player, clock) {
  onConnected = () => clock.start().then(() => player.tick());
  room.attach(player);
  window.cowatch.chat = new PartyChat(room);
  room.start();
  player.addEventListener("failed", ({ detail }) => {
    lastChange.textContent = `Not shared: ${detail.error.message}`;
    room.resync();
  });
  player.addEventListener("denied", () => {
    lastChange.textContent = "Only the host and cohosts control playback in this party.";
  });
  room.addEventListener("over", () => showIndicator("error", "Not syncing: not in the party"));
  room.addEventListener("status", ({ detail }) => {
    if (detail.status === "disconnected") showIndicator("offline", "Reconnecting…");
  });
  player.addEventListener("drift", ({ detail }) => showDrift(detail));
}

/** "Watch party": a signed-in viewer starts one around this video and lands inside it. */
function setUpPartyForm() {
  const open = document.getElementById("party-open");
  const form = document.getElementById("party-form");
  if (!open || !form) return;
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    open.setAttribute("aria-expanded", String(!form.hidden));
  });
  const error = document.getElementById("party-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const data = Object.fromEntries(new FormData(form));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    error.textContent = "";
    try {
      const party = await api("POST", "/api/parties", {
        video_id: videoId,
        visibility: data.visibility,
        control: data.control,
        password: data.password || null,
      });
      location.assign(`/watch/${videoId}?party=${encodeURIComponent(party.id)}`);
    } catch (failure) {
      error.textContent = failure.message;
      button.disabled = false;
    }
  });
}

/** The change goes over the socket when it is up: its one-way time is what the clock measured. */
async function commit(variables) {
  if (!socket.connected) return (await gql(UPDATE, variables)).updateVideoTimestamp;
  try {
    return (await socket.request(UPDATE, variables, COMMIT_TIMEOUT_MS)).updateVideoTimestamp;
  } catch (errors) {
    throw new GraphQLError(Array.isArray(errors) ? errors : [{ message: String(errors) }]);
  }
}

const usernames = new Map();

/** A user's name, fetched once per user id (the events carry only the id). */
function username(userId) {
  if (!usernames.has(userId)) {
    usernames.set(
      userId,
      gql(WHO, { id: userId }).then(
        (data) => data.user?.username || "Someone",
        () => "Someone",
      ),
    );
  }
  return usernames.get(userId);
}

let described = 0;

async function describe(state, previous, mine = false) {
  const turn = ++described;
  if (!state.userId && !mine) {
    lastChange.textContent = "";
    return;
  }
  let what = state.playing ? "played from" : "paused at";
  if (previous && previous.playing === state.playing) what = "moved to";
  const self = mine || (viewerId && state.userId === viewerId);
  const who = self ? "You" : await username(state.userId);
  if (turn !== described) return; // a newer change was described meanwhile
  lastChange.textContent = `${who} ${what} ${formatTime(state.timestamp)}`;
  lastChange.dataset.userId = state.userId || viewerId || "";
}

function setUpControls(player) {
  const toggle = document.getElementById("play-toggle");
  const quality = document.getElementById("quality");
  const unmute = document.getElementById("unmute");
  const label = () => {
    const text = video.paused ? "Play" : "Pause";
    toggle.textContent = text;
    toggle.setAttribute("aria-label", text);
  };
  const playPause = () => (video.paused ? video.play().catch(() => {}) : video.pause());
  const skip = (by) => {
    const end = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.min(Math.max(0, video.currentTime + by), end);
  };
  video.addEventListener("play", label);
  video.addEventListener("pause", label);
  toggle.addEventListener("click", playPause);
  document.getElementById("back").addEventListener("click", () => skip(-SKIP_S));
  document.getElementById("forward").addEventListener("click", () => skip(SKIP_S));
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest("input, select, textarea, button, video, a")) return;
    const action = { k: playPause, j: () => skip(-SKIP_S), l: () => skip(SKIP_S) }[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  quality.addEventListener("change", () => {
    localStorage.setItem(QUALITY_KEY, quality.selectedOptions[0].dataset.quality);
    player.switchSource(quality.value);
  });
  const preferred = localStorage.getItem(QUALITY_KEY);
  const stored = [...quality.options].find((o) => o.dataset.quality === preferred);
  if (stored && !stored.selected) {
    stored.selected = true;
    player.switchSource(stored.value);
  }
  player.addEventListener("muted", () => {
    unmute.hidden = false;
  });
  unmute.addEventListener("click", () => {
    video.muted = false;
    unmute.hidden = true;
  });
}
