// One party over /ws: party:subscribe on every (re)connect, so each connection starts from a
// party:snapshot; frames in order after it. The server pings the socket (the browser answers by
// itself) and measures the member's latency from those round trips.

const MAX_BACKOFF_MS = 10000;

export class PartySocket {
  /**
   * @param {object} options
   * @param {string} options.url  ws:// or wss:// address of /ws (with ?token= for a member token)
   * @param {string} options.partyId
   * @param {(frame: object) => void} options.onFrame
   * @param {(status: string, detail?: object) => void} [options.onStatus]
   *   "connecting" | "connected" | "disconnected" | "closed"
   */
  constructor({ url, partyId, onFrame, onStatus = () => {} }) {
    this.url = url;
    this.partyId = partyId;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.attempt = 0;
    this.stopped = false;
    this.socket = null;
    this.timer = null;
    this.connect();
  }

  get connected() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped) return;
    this.onStatus("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.send({ type: "party:subscribe" });
      this.onStatus("connected");
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      if (this.stopped) return this.onStatus("closed", { code: event.code, reason: event.reason });
      this.onStatus("disconnected", { code: event.code, reason: event.reason });
      if (this.stopped) return; // the listener gave up on it
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), backoff);
    };
  }

  /** A frame about this party (its party_id is added); dropped while disconnected. */
  send(message) {
    if (!this.connected) return false;
    this.socket.send(JSON.stringify({ ...message, party_id: this.partyId }));
    return true;
  }

  /** No more reconnects (kicked, ended, left). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000, "bye");
  }
}
