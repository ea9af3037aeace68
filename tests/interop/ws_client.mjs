#!/usr/bin/env node
// Interop check: drive a running wirehub server with the Node `ws` client.
//
// Usage: node tests/interop/ws_client.mjs ws://127.0.0.1:PORT
//
//  (a) /echo: a text and a binary message must come back byte-identical;
//  (b) /ws with subprotocol wirehub.v1.json: welcome, subscribe, publish
//      (reply + pushed message), ping/pong, unknown op error, close 1000.
//
// Prints a JSON summary ({"ok", "url", "checks": [{name, ok, detail}], "error"})
// on stdout and exits 0 only if every check passed (1 otherwise, 2 on bad usage).
// Per-step timeout: 10 s times WIREHUB_TEST_TIMEOUT_SCALE (default 1).
import { WebSocket } from "ws";

const SCALE = Number(process.env.WIREHUB_TEST_TIMEOUT_SCALE || "1") || 1;
const STEP_MS = 10_000 * SCALE;
const SUBPROTOCOL = "wirehub.v1.json";
const CHANNEL = "interop";

const checks = [];
let firstFailure = null;

/** Record one named check; returns `ok` so callers can branch on it. */
function check(name, ok, detail = undefined) {
  checks.push(detail === undefined ? { name, ok: !!ok } : { name, ok: !!ok, detail });
  if (!ok && firstFailure === null) firstFailure = `${name}: ${JSON.stringify(detail)}`;
  return !!ok;
}

const isInt = (v) => Number.isInteger(v);
const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Open a WebSocket and buffer every incoming message, so that no frame sent
 * right after the handshake (the welcome) can be missed and frames can be
 * awaited by predicate in any order.
 */
function connect(url, protocols) {
  const ws = new WebSocket(url, protocols, { handshakeTimeout: STEP_MS });
  const inbox = []; // {data: Buffer, isBinary: boolean}
  const waiters = []; // {pred, resolve}
  let closeInfo = null;
  const closeWaiters = [];
  ws.on("message", (data, isBinary) => {
    const msg = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary };
    const i = waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(msg);
    else inbox.push(msg);
  });
  ws.on("close", (code, reason) => {
    closeInfo = { code, reason: reason.toString() };
    for (const w of closeWaiters.splice(0)) w(closeInfo);
  });
  ws.on("error", () => {}); // surfaced through the open/close promises below

  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) =>
      reject(new Error(`HTTP ${res.statusCode} instead of a WebSocket upgrade`)));
  });

  /** Next message (buffered or future) matching `pred`, or reject after the step timeout. */
  function next(pred, what) {
    const i = inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: null };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${STEP_MS} ms waiting for ${what}; ` +
          `unmatched frames: ${inbox.map((m) => m.data.toString()).join(" | ") || "none"}` +
          (closeInfo ? `; connection closed with ${closeInfo.code} ${closeInfo.reason}` : "")));
      }, STEP_MS);
      w.resolve = (m) => { clearTimeout(timer); resolve(m); };
      waiters.push(w);
    });
  }

  /** Next JSON text frame for which `pred(obj)` is true. */
  async function nextJson(pred, what) {
    const m = await next((msg) => {
      if (msg.isBinary) return false;
      try { return pred(JSON.parse(msg.data.toString("utf8"))); } catch { return false; }
    }, what);
    return JSON.parse(m.data.toString("utf8"));
  }

  /** Close with `code` and resolve with the close frame the server answered. */
  function close(code) {
    return new Promise((resolve, reject) => {
      if (closeInfo) { resolve(closeInfo); return; }
      const timer = setTimeout(() => reject(new Error(`no close answer within ${STEP_MS} ms`)),
        STEP_MS);
      closeWaiters.push((info) => { clearTimeout(timer); resolve(info); });
      ws.close(code);
    });
  }

  return { ws, opened, next, nextJson, close, inbox };
}

async function echoChecks(base) {
  const c = connect(`${base}/echo`);
  await c.opened;
  check("echo: connected", true);

  // Text with multi-byte UTF-8 (2, 3 and 4 byte sequences).
  const text = "wirehub interop: h\u00e9llo \u20ac \u{1F680} " + "x".repeat(1000);
  c.ws.send(text);
  const t = await c.next(() => true, "the text echo");
  check("echo: text comes back as a text frame", !t.isBinary);
  check("echo: text is byte-identical", t.data.equals(Buffer.from(text, "utf8")),
    { sent: Buffer.byteLength(text), received: t.data.length });

  // Binary with every byte value, some of them invalid UTF-8.
  const bin = Buffer.alloc(4096);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7 + 3) & 0xff;
  c.ws.send(bin, { binary: true });
  const b = await c.next(() => true, "the binary echo");
  check("echo: binary comes back as a binary frame", b.isBinary);
  check("echo: binary is byte-identical", b.data.equals(bin),
    { sent: bin.length, received: b.data.length });

  const closed = await c.close(1000);
  check("echo: close 1000 answered with 1000", closed.code === 1000, closed);
}

async function protocolChecks(base) {
  const c = connect(`${base}/ws`, [SUBPROTOCOL]);
  await c.opened;
  check("ws: subprotocol negotiated", c.ws.protocol === SUBPROTOCOL, { protocol: c.ws.protocol });

  // 1. welcome is the first frame.
  const first = await c.next(() => true, "the welcome frame");
  let welcome = null;
  try { welcome = JSON.parse(first.data.toString("utf8")); } catch { /* checked below */ }
  const welcomeOk = !first.isBinary && isPlainObject(welcome) && welcome.op === "welcome" &&
    welcome.protocol === "wirehub.v1" && welcome.client !== undefined &&
    welcome.client !== null && welcome.node !== undefined && welcome.node !== null &&
    typeof welcome.ping_interval === "number";
  if (!check("ws: first frame is welcome", welcomeOk, welcome ?? first.data.toString())) return;
  const clientId = welcome.client;

  // 2. subscribe.
  c.ws.send(JSON.stringify({ op: "subscribe", id: 1, channel: CHANNEL }));
  const sub = await c.nextJson((m) => m.id === 1, "the subscribe reply (id 1)");
  const subOk = sub.op === "reply" && isPlainObject(sub.result) &&
    sub.result.channel === CHANNEL && sub.result.epoch !== undefined &&
    isInt(sub.result.offset);
  if (!check("ws: subscribe reply", subOk, sub)) return;
  const epoch = sub.result.epoch;

  // 3. publish: a reply with id 2 and a pushed message, in either order.
  c.ws.send(JSON.stringify({ op: "publish", id: 2, channel: CHANNEL, data: { n: 1 } }));
  const [pub, push] = await Promise.all([
    c.nextJson((m) => m.id === 2, "the publish reply (id 2)"),
    c.nextJson((m) => m.op === "message" && m.channel === CHANNEL, "the pushed message"),
  ]);
  check("ws: publish reply", pub.op === "reply" && isPlainObject(pub.result) &&
    isInt(pub.result.offset), pub);
  const pushOk = isPlainObject(push.data) && push.data.n === 1 &&
    Object.keys(push.data).length === 1 && isInt(push.offset) && push.epoch !== undefined &&
    isInt(push.ts);
  check("ws: pushed message", pushOk, push);
  check("ws: pushed message is from this client", push.from === clientId,
    { from: push.from, client: clientId });
  check("ws: pushed offset equals the publish reply offset",
    push.offset === pub.result?.offset, { push: push.offset, reply: pub.result?.offset });
  check("ws: pushed epoch equals the subscribe epoch", push.epoch === epoch,
    { push: push.epoch, subscribe: epoch });

  // 4. application-level ping.
  c.ws.send(JSON.stringify({ op: "ping", id: 3 }));
  const pong = await c.nextJson((m) => m.id === 3, "the pong (id 3)");
  check("ws: ping answered with pong", pong.op === "pong", pong);

  // 5. unknown op.
  c.ws.send(JSON.stringify({ op: "nope", id: 4 }));
  const err = await c.nextJson((m) => m.id === 4, "the error (id 4)");
  check("ws: unknown op answered with error unknown_op",
    err.op === "error" && err.code === "unknown_op", err);

  // Nothing unexpected may be left over (ignore further pushes/pongs of other kinds).
  const stray = c.inbox.map((m) => m.data.toString()).filter((s) => !s.includes('"op":"message"'));
  check("ws: no unexpected frames", stray.length === 0, stray);

  // 6. close.
  const closed = await c.close(1000);
  check("ws: close 1000 answered with 1000", closed.code === 1000, closed);
}

async function main() {
  const base = (process.argv[2] || "").replace(/\/+$/, "");
  if (!/^wss?:\/\/[^/]+$/.test(base)) {
    console.error("usage: node ws_client.mjs ws://HOST:PORT");
    process.exit(2);
  }
  let error = null;
  for (const [name, fn] of [["echo", echoChecks], ["ws", protocolChecks]]) {
    try {
      await fn(base);
    } catch (e) {
      check(`${name}: completed`, false, String(e && e.message ? e.message : e));
      error = error ?? `${name}: ${e && e.message ? e.message : e}`;
    }
  }
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  console.log(JSON.stringify({ ok, url: base, passed: checks.filter((c) => c.ok).length,
    failed: checks.filter((c) => !c.ok).length, checks, error: ok ? null : (error ?? firstFailure) },
  null, 2));
  if (!ok) console.error(`interop FAILED: ${error ?? firstFailure}`);
  process.exit(ok ? 0 : 1);
}

main();
