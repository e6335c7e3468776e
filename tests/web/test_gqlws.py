"""The pages' graphql-transport-ws client (web/static/js/gqlws.js, run by node) on a fake socket."""

from __future__ import annotations

import json
from pathlib import Path

from tests.web.node import run_node

GQLWS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "gqlws.js"

#: Records what the client sends and whether it was sent within the task that made the calls;
#: plays the server's side by hand.
SCRIPT = """
const sent = [];
let task = "connect";
class FakeSocket {
  static OPEN = 1;
  constructor() { this.readyState = 1; FakeSocket.last = this; }
  send(text) { sent.push({ task, message: JSON.parse(text) }); }
  close() {}
}
globalThis.WebSocket = FakeSocket;
const { GraphQLSocket } = await import(%(module)s);
const client = new GraphQLSocket({ url: "ws://x/graphql", connectionParams: () => ({}) });
const socket = FakeSocket.last;
socket.onopen();
socket.onmessage({ data: JSON.stringify({ type: "connection_ack" }) });
const later = () => new Promise((resolve) => setTimeout(resolve, 0));
await later();
task = "calls";
const stop = client.subscribe("subscription { s }", {}, {});
client.request("mutation { a }").catch(() => {});
client.request("mutation { b }").catch(() => {});
task = "later";
await later();
await later();
const rows = sent.map(({ task, message }) => [task, message.type, message.id ?? null]);
console.log(JSON.stringify(rows));
stop();
process.exit(0);
"""


def test_requests_are_followed_by_one_pong_in_a_later_task() -> None:
    sent = run_node("--input-type=module", "-e", SCRIPT % {"module": json.dumps(GQLWS.as_uri())})
    assert sent == [
        ["connect", "connection_init", None],
        ["calls", "subscribe", "1"],  # a subscription: nothing behind it
        ["calls", "subscribe", "2"],
        ["calls", "subscribe", "3"],
        ["later", "pong", None],  # one, behind both requests, in a task of its own
    ]
