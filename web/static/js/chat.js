// A party's chat beside the player and its reactions over the video. Messages go out and come in
// over the party's /ws socket (chat:send, chat:delete, party:react → party:chat_message,
// party:chat_deleted, party:reaction); the history is paged from GraphQL's Party.messages.
// Everything members wrote is put on the page as text (textContent), never parsed as HTML.
import { formatTime } from "./api.js";

const PAGE = 20;
const MESSAGE = "id body author { id displayName } mediaTime createdAt deleted";
const HISTORY = `query History($id: ID!, $first: Int, $after: String) {
  party(id: $id) { messages(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { ${MESSAGE} replyTo { ${MESSAGE} } } }
  } }
}`;
const REQUESTS = new Set(["chat:send", "chat:delete", "party:react"]);

const $ = (id) => document.getElementById(id);

export function element(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  return node;
}

/** A GraphQL message (camelCase) as the /ws frames carry it (snake_case). */
export function fromGraphQL(node) {
  if (!node) return null;
  return {
    id: node.id,
    body: node.body,
    author: { id: node.author.id, display_name: node.author.displayName },
    reply_to: fromGraphQL(node.replyTo),
    media_time: node.mediaTime,
    created_at: node.createdAt,
    deleted: node.deleted,
  };
}

export class PartyChat {
  /**
   * @param {import("./party.js").PartyRoom} room
   */
  constructor(room) {
    this.room = room;
    this.older = []; // from the history, oldest first
    this.live = []; // from the socket since the last snapshot, in order
    this.byId = new Map();
    this.after = null;
    this.hasOlder = false;
    this.replyTo = null;
    this.pending = null; // the text of a message sent and not yet echoed
    this.loading = 0;
    this.may = null;
    this.form = $("chat-form");
    this.input = $("chat-input");
    this.log = $("chat-log");
    this.error = $("chat-error");
    this.setUp();
  }

  setUp() {
    const room = this.room;
    $("reactions").hidden = false;
    room.addEventListener("snapshot", () => this.reload());
    room.addEventListener("members", () => {
      this.renderState();
      // Delete buttons and clickable times follow the viewer's role and the control mode.
      const may = `${room.self?.role}:${room.canControl()}`;
      if (may !== this.may) {
        this.may = may;
        this.render();
      }
    });
    room.addEventListener("frame", ({ detail }) => this.frame(detail));
    room.addEventListener("over", () => {
      this.form.hidden = true;
      $("reactions").hidden = true;
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    $("chat-reply-cancel").addEventListener("click", () => this.reply(null));
    $("chat-older").addEventListener("click", () => this.page());
    for (const button of $("reactions").querySelectorAll("button[data-emoji]")) {
      button.addEventListener("click", () => {
        this.room.socket?.send({ type: "party:react", emoji: button.dataset.emoji });
      });
    }
    $("chat-enabled").addEventListener("change", (event) => {
      room.hostCall("PATCH", "", { chat_enabled: event.target.checked });
    });
  }

  // -- history -------------------------------------------------------------------------

  /** A new snapshot (connect, reconnect, settings): the history anew, live messages after it. */
  reload() {
    this.older = [];
    this.live = [];
    this.byId.clear();
    this.after = null;
    this.hasOlder = false;
    this.render();
    this.renderState();
    this.page();
  }

  async page() {
    const turn = ++this.loading;
    let data;
    try {
      data = await this.room.graphql(HISTORY, { id: this.room.partyId, first: PAGE, after: this.after });
    } catch (error) {
      if (turn === this.loading) this.error.textContent = `History unavailable: ${error.message}`;
      return;
    }
    if (turn !== this.loading) return;
    const page = data.party?.messages;
    if (!page) return;
    const known = new Set(this.older.map((m) => m.id));
    const earlier = page.edges
      .map((edge) => fromGraphQL(edge.node))
      .filter((m) => !known.has(m.id))
      .reverse();
    this.older = [...earlier, ...this.older];
    this.after = page.pageInfo.endCursor;
    this.hasOlder = page.pageInfo.hasNextPage;
    const scrolled = this.log.scrollHeight - this.log.scrollTop;
    this.render();
    // Earlier messages go on top: keep the reader's place (the newest stay in view at first).
    this.log.scrollTop = this.after && earlier.length ? this.log.scrollHeight - scrolled : this.log.scrollHeight;
  }

  // -- frames --------------------------------------------------------------------------

  frame(frame) {
    switch (frame.type) {
      case "party:chat_message":
        this.add(frame.message);
        break;
      case "party:chat_deleted":
        this.deleted(frame.message_id);
        break;
      case "party:reaction":
        this.float(frame.reaction);
        break;
      case "error":
        if (REQUESTS.has(frame.request)) this.refused(frame);
        break;
    }
  }

  add(message) {
    if (this.live.some((m) => m.id === message.id)) return;
    this.live.push(message);
    if (message.author.id === this.room.me && this.pending !== null) {
      this.pending = null;
      this.error.textContent = "";
    }
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.render();
    if (atBottom || message.author.id === this.room.me) this.log.scrollTop = this.log.scrollHeight;
  }

  deleted(messageId) {
    for (const message of [...this.older, ...this.live]) {
      if (message.id === messageId) Object.assign(message, { deleted: true, body: null });
      if (message.reply_to?.id === messageId) {
        Object.assign(message.reply_to, { deleted: true, body: null });
      }
    }
    if (this.replyTo?.id === messageId) this.reply(null);
    this.render();
  }

  refused(frame) {
    this.error.textContent = frame.message;
    if (frame.request === "chat:send" && this.pending !== null) {
      if (!this.input.value) this.input.value = this.pending; // give the text back
      this.pending = null;
    }
  }

  // -- sending -------------------------------------------------------------------------

  send() {
    const body = this.input.value.trim();
    if (!body) return;
    const message = { type: "chat:send", body };
    if (this.replyTo) message.reply_to = this.replyTo.id;
    if (!this.room.socket?.send(message)) {
      this.error.textContent = "Not connected; try again in a moment.";
      return;
    }
    this.pending = body;
    this.input.value = "";
    this.error.textContent = "";
    this.reply(null);
  }

  reply(message) {
    this.replyTo = message;
    $("chat-replying").hidden = !message;
    $("chat-reply-text").textContent = message
      ? `Replying to ${message.author.display_name}: ${message.body}`
      : "";
    if (message) this.input.focus();
  }

  remove(message) {
    this.room.socket?.send({ type: "chat:delete", message_id: message.id });
  }

  // -- the page ------------------------------------------------------------------------

  renderState() {
    const party = this.room.party;
    const on = party?.chat_enabled !== false;
    this.input.disabled = !on;
    this.form.querySelector("button[type=submit]").disabled = !on;
    this.input.placeholder = on ? "Say something" : "The host turned chat off";
    $("chat-enabled").checked = on;
    for (const button of $("reactions").querySelectorAll("button")) button.disabled = !on;
  }

  render() {
    const live = new Set(this.live.map((m) => m.id));
    const messages = [...this.older.filter((m) => !live.has(m.id)), ...this.live];
    this.log.replaceChildren(...messages.map((m) => this.row(m)));
    $("chat-older").hidden = !this.hasOlder;
  }

  row(message) {
    const room = this.room;
    const row = element("li", { className: "message", attrs: { "data-message-id": message.id } });
    const head = element("div", { className: "head" });
    head.append(element("span", { className: "author", text: message.author.display_name }));
    head.append(" ", this.time(message.media_time));
    row.append(head);
    if (message.reply_to) {
      const quoted = message.reply_to;
      const text = quoted.deleted ? "a deleted message" : quoted.body;
      row.append(
        element("p", {
          className: "quote",
          text: `↪ ${quoted.author.display_name}: ${text}`,
        }),
      );
    }
    if (message.deleted) {
      row.classList.add("deleted");
      row.append(element("p", { className: "body", text: "Message deleted" }));
      return row;
    }
    row.append(element("p", { className: "body", text: message.body }));
    const actions = element("span", { className: "actions" });
    const reply = element("button", {
      text: "Reply",
      className: "link",
      attrs: { type: "button", "aria-label": `Reply to ${message.author.display_name}` },
    });
    reply.addEventListener("click", () => this.reply(message));
    actions.append(reply);
    const mine = message.author.id === room.me;
    if (mine || ["HOST", "COHOST"].includes(room.self?.role)) {
      const remove = element("button", {
        text: "Delete",
        className: "link",
        attrs: { type: "button", "aria-label": `Delete message from ${message.author.display_name}` },
      });
      remove.addEventListener("click", () => this.remove(message));
      actions.append(remove);
    }
    row.append(actions);
    return row;
  }

  /** The message's video time: a button that moves the party there for whoever controls it. */
  time(seconds) {
    const text = formatTime(seconds);
    if (!this.room.canControl()) return element("span", { className: "time", text });
    const button = element("button", {
      text,
      className: "link time",
      attrs: { type: "button", "aria-label": `Go to ${text}` },
    });
    button.addEventListener("click", () => {
      this.room.video.currentTime = seconds; // the sync engine shares the viewer's seek
    });
    return button;
  }

  float(reaction) {
    floatReaction(reaction);
  }
}

/** A reaction rising over the video: its emoji, its author's name as the tooltip. */
export function floatReaction(reaction) {
  const bubble = element("span", {
    className: "floating",
    text: reaction.emoji,
    attrs: { title: reaction.author.display_name },
  });
  bubble.dataset.author = reaction.author.display_name;
  bubble.style.left = `${5 + Math.random() * 80}%`; // CSSOM: allowed by the page's CSP
  bubble.addEventListener("animationend", () => bubble.remove());
  $("reaction-layer").append(bubble);
}
