// A small graphql-transport-ws client: one socket, many operations, reconnect with backoff.
// Protocol: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md

const PROTOCOL = "graphql-transport-ws";
const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 5000;
const MAX_BACKOFF_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000;

export class GraphQLSocket {
  /**
   * @param {object} options
   * @param {string} options.url  ws:// or wss:// address of /graphql
   * @param {() => object} options.connectionParams  the connection_init payload, read on every connect
   * @param {(status: string, detail?: object) => void} [options.onStatus]
   *   "connecting" | "connected" | "disconnected" | "rejected"
   */
  constructor({ url, connectionParams, onStatus = () => {} }) {
    this.url = url;
    this.connectionParams = connectionParams;
    this.onStatus = onStatus;
    this.operations = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.acked = false;
    this.closed = false;
    this.socket = null;
    this.timers = {};
    this.holdUntil = 0;
    this.connects = 0;
    this.connect();
  }

  get connected() {
    return this.acked;
  }

  connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    socket.onopen = () => {
      this.send({ type: "connection_init", payload: this.connectionParams() });
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket === socket) this.dropped(event);
    };
  }

  receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    const operation = message.id !== undefined ? this.operations.get(message.id) : undefined;
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.attempt = 0;
        this.connects += 1;
        for (const [id, op] of [...this.operations]) this.start(id, op);
        this.heartbeat();
        this.onStatus("connected");
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        clearTimeout(this.timers.pong);
        break;
      case "next":
        operation?.sink.next(message.payload);
        break;
      case "error":
        if (operation) {
          this.operations.delete(message.id);
          operation.sink.error(message.payload);
        }
        break;
      case "complete":
        if (operation) {
          this.operations.delete(message.id);
          operation.sink.complete();
        }
        break;
    }
  }

  dropped(event) {
    this.acked = false;
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    // One-shot operations cannot be replayed safely; subscriptions restart on the next ack.
    for (const [id, op] of this.operations) {
      if (op.once) {
        this.operations.delete(id);
        op.sink.error([{ message: "connection lost" }]);
      }
    }
    if (this.closed) return;
    console.warn(`GraphQL socket closed: ${event.code} ${event.reason}`);
    const rejected = event.code === 4403 || event.code === 4401;
    this.onStatus(rejected ? "rejected" : "disconnected", { code: event.code });
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    const delay = Math.max(backoff, this.holdUntil - performance.now());
    this.attempt += 1;
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  heartbeat() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      this.send({ type: "ping" });
      clearTimeout(this.timers.pong);
      // A socket that silently died never closes by itself: give up on it and reconnect.
      this.timers.pong = setTimeout(() => this.socket?.close(4000, "no pong"), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  start(id, op) {
    if (op.connection === this.connects) return; // already running on this connection
    op.connection = this.connects;
    this.send({ id, type: "subscribe", payload: { query: op.query, variables: op.variables } });
    if (op.once) this.followUp();
  }

  /**
   * A request (a change, a clock reading) is one small frame, one TCP segment with nothing
   * behind it: lost, it waits for the sender's loss probe, 200 ms and more. A pong in a task of
   * its own goes as a segment of its own, whose selective acknowledgement shows the hole about a
   * round trip later (bench/tail_loss.py). The protocol allows an unsolicited pong; nobody
   * answers it. The server does the same behind its frames (realtime/uvicorn_writer.py).
   */
  followUp() {
    if (this.timers.followUp) return;
    this.timers.followUp = setTimeout(() => {
      this.timers.followUp = null;
      this.send({ type: "pong" });
    }, 0);
  }

  /** Subscribe; returns a function that stops it. Resubscribes by itself after a reconnect. */
  subscribe(query, variables, sink, { once = false } = {}) {
    const id = String(this.nextId++);
    const op = { query, variables, sink: { next() {}, error() {}, complete() {}, ...sink }, once };
    this.operations.set(id, op);
    if (this.acked) this.start(id, op);
    return () => {
      if (this.operations.delete(id) && this.acked) this.send({ id, type: "complete" });
    };
  }

  /** One query over the socket: resolves with `data`, rejects on errors or a lost connection. */
  request(query, variables = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      let stop = () => {};
      const timer = setTimeout(() => {
        stop();
        reject([{ message: "no answer" }]);
      }, timeoutMs);
      stop = this.subscribe(
        query,
        variables,
        {
          next: (payload) => {
            clearTimeout(timer);
            stop();
            if (payload.errors?.length) reject(payload.errors);
            else resolve(payload.data);
          },
          error: (errors) => {
            clearTimeout(timer);
            reject(errors);
          },
        },
        { once: true },
      );
    });
  }

  /** Drop the socket now and stay away at least `holdMs` (tests prove reconnects with it). */
  interrupt(holdMs = 0) {
    this.holdUntil = performance.now() + holdMs;
    this.socket?.close(4000, "interrupted");
  }

  close() {
    this.closed = true;
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    clearInterval(this.timers.ping);
    this.socket?.close(1000, "bye");
  }
}

export function graphqlSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/graphql`;
}
