// web/static/js/replay.js's log reading, run by node for tests/web/test_replay.py:
//
//   echo '{"edges": [...], "at": [ms, ...]}' | node tests/web/replay_log.mjs  ->  JSON on stdout
//
// Out: the lines the replay would show ({seq, kind, text|body|emoji}) in the order they are due,
// and the recorded playhead at each server time of `at`.
import { readFileSync } from "node:fs";

globalThis.localStorage = { removeItem() {} }; // api.js tidies it on load; nothing else is used
const { playheadAt, readLog } = await import("../../web/static/js/replay.js");

const input = JSON.parse(readFileSync(0, "utf8"));
const { versions, lines } = readLog(input.edges);
const shown = lines.map((line) => ({
  seq: line.seq,
  kind: line.kind,
  text: line.text ?? line.message?.body ?? line.reaction?.emoji ?? null,
}));
const heads = input.at.map((at) => playheadAt(versions, at));
process.stdout.write(JSON.stringify({ lines: shown, heads }));
