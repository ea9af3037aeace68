/**
 * wirehub.js: a browser client for wirehub protocol v1 (docs/protocol.md).
 * Plain ES module, no dependencies, no build step.
 *
 *   import { WirehubClient } from "/static/wirehub.js";
 *   const client = new WirehubClient("ws://host:8000/ws", {
 *     onStateChange(state, info) {},   // "connecting" | "open" | "closing" | "closed"
 *     onOpen(welcome) {},              // each (re)connection, before resubscribing
 *     getToken: async () => jwt,       // servers with authentication: called for the
 *                                      // first `connect` frame and on every `refresh` ask
 *     backoffBase: 0.5, backoffCap: 30, requestTimeout: 10,   // seconds
 *   });
 *   const sub = client.subscribe("chat:lobby", (msg) => {}, {
 *     maxRate: 10,                     // messages/s cap, the server conflates
 *     recover: true,                   // resubscribe with `since` after a reconnect
 *     onSubscribed(result, again) {},  // every subscribe reply; again = after a reconnect
 *     onRecoveryFailed(result) {},     // missed messages are gone: reload history
 *     onJoin(f) {}, onLeave(f) {}, onEvent(f) {},
 *   });
 *   await sub.ready;  await client.publish("chat:lobby", {text: "hi"});
 *   await client.send("chat.nick", {nick: "ada"});  await client.history(ch, {limit: 50});
 *   await client.presence(ch);  await client.ping();  sub.unsubscribe();  client.close();
 *   client.on("join" | "leave" | "event" | "message" | "error", (frame) => {});
 *
 * Requests carry integer ids and return promises that resolve with the reply's
 * `result` or reject with a WirehubError ({code, message}); code "timeout" when
 * no answer came within requestTimeout, "not_connected" when the socket is not
 * open. Subscriptions are the exception: they are remembered and sent as soon as
 * the connection is open, and again after every reconnection.
 *
 * Reconnection: after a retryable close (network loss 1005/1006, 1001, 1011-1013,
 * 4000-4499) the client waits a random delay in [0, min(cap, base * 2^n)] ("full
 * jitter", reset once a connection got its welcome) and connects again; a final
 * code (1000, 1002, 1003, 1007-1009, 4500-4999) or close() stops it. Every
 * subscription is then renewed with `since: {offset, epoch}` of the last
 * message it saw (or of the subscribe reply), so the server replays what was
 * missed; when it answers `recovered: false`, onRecoveryFailed is called.
 */

export const PROTOCOL = "wirehub.v1.json";
export const State = Object.freeze({
  CONNECTING: "connecting", OPEN: "open", CLOSING: "closing", CLOSED: "closed",
});

/** Whether a client should reconnect after close `code` (docs/protocol.md). */
export function isRetryable(code) {
  if (code >= 4000 && code <= 4499) return true;
  return [1001, 1005, 1006, 1011, 1012, 1013].includes(code);
}

export class WirehubError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "WirehubError";
    this.code = code;
    this.detail = message;
  }
}

/** One channel subscription; it survives reconnections. */
export class Subscription {
  constructor(client, channel, handler, opts) {
    this.client = client;
    this.channel = channel;
    this.handler = handler;
    this.opts = opts;
    this.offset = null; // stream position: last message seen, or the subscribe reply's
    this.epoch = null;
    this.active = true;
    this.subscribed = 0; // subscribe replies received (1 + reconnections)
    this._seen = { offset: -1, epoch: null }; // last message handed to `handler`
    this.ready = new Promise((resolve, reject) => { this._resolve = resolve; this._reject = reject; });
    this.ready.catch(() => {}); // unobserved refusals are reported through onError
  }

  /** The `since` position to recover from, or undefined for a fresh subscribe. */
  get since() {
    if (this.opts.recover === false || this.epoch === null) return undefined;
    return { offset: this.offset, epoch: this.epoch };
  }

  _message(frame) {
    if (this._seen.epoch === frame.epoch && frame.offset <= this._seen.offset) return;
    this._seen = { offset: frame.offset, epoch: frame.epoch };
    this.offset = frame.offset;
    this.epoch = frame.epoch;
    this.handler?.(frame);
  }

  /** Stop receiving this channel (resolves once the server confirmed). */
  unsubscribe() {
    return this.client.unsubscribe(this.channel);
  }
}

export class WirehubClient {
  constructor(url, options = {}) {
    this.url = url;
    this.options = { backoffBase: 0.5, backoffCap: 30, requestTimeout: 10, ...options };
    this.state = State.CLOSED;
    this.clientId = null;
    this.node = null;
    this.attempt = 0; // reconnection attempts since the last good connection
    this.subscriptions = new Map(); // channel -> Subscription
    this.received = {}; // channel -> count of message frames received (diagnostics)
    this._listeners = new Map();
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._nextId = 1;
    this._ceiling = this.options.backoffBase;
    this._timer = null;
    this._ws = null;
    this._final = false;
    this._onOnline = () => { if (this._timer !== null) this._reconnectNow(); };
    globalThis.addEventListener?.("online", this._onOnline);
    // connect once the caller has had a chance to add listeners and subscriptions
    this._timer = setTimeout(() => this._connect(), 0);
  }

  /** Call `fn(frame)` for every push of `type`: join, leave, event, message, error. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  _emit(type, frame) {
    for (const fn of this._listeners.get(type) ?? []) {
      try { fn(frame); } catch (err) { console.error(`wirehub ${type} listener`, err); }
    }
  }

  _setState(state, info = {}) {
    this.state = state;
    this.options.onStateChange?.(state, { attempt: this.attempt, ...info });
  }

  // -- connection ------------------------------------------------------------------
  _connect() {
    this._timer = null;
    if (this._final) return;
    this._setState(State.CONNECTING);
    let ws;
    try {
      ws = new WebSocket(this.url, [PROTOCOL]);
    } catch (err) { // a malformed URL: nothing to retry
      this._final = true;
      this._setState(State.CLOSED, { code: 1002, reason: String(err), final: true });
      return;
    }
    this._ws = ws;
    ws.onmessage = (ev) => this._receive(ev.data);
    ws.onclose = (ev) => { if (this._ws === ws) this._closed(ev.code, ev.reason); };
    ws.onerror = () => {}; // always followed by close, which decides what to do
  }

  _closed(code, reason) {
    this._ws = null;
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new WirehubError("disconnected", `connection closed (${code}) before the reply`));
      this._pending.delete(id);
    }
    const final = this._final || !isRetryable(code);
    if (final) {
      this._final = true;
      for (const sub of this.subscriptions.values()) {
        sub._reject(new WirehubError("closed", `connection closed (${code})`));
      }
      this._setState(State.CLOSED, { code, reason, final: true });
      return;
    }
    const delay = Math.random() * this._ceiling; // full jitter
    this._ceiling = Math.min(this.options.backoffCap, this._ceiling * 2);
    this.attempt += 1;
    this._setState(State.CLOSED, { code, reason, final: false, delay });
    this._timer = setTimeout(() => this._connect(), delay * 1000);
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    this._connect();
  }

  /** Close for good (1000): no reconnection. */
  close(code = 1000, reason = "") {
    this._final = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
      this._setState(State.CLOSED, { code, reason, final: true });
    }
    if (this._ws && this._ws.readyState <= WebSocket.OPEN) {
      this._setState(State.CLOSING, { code, reason });
      this._ws.close(code, reason);
    }
  }

  // -- frames in --------------------------------------------------------------------
  _receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    switch (frame.op) {
      case "welcome": return this._welcome(frame);
      case "refresh": return this._refresh();
      case "reply": case "pong": case "error": {
        const p = frame.id !== undefined && frame.id !== null ? this._pending.get(frame.id) : null;
        if (!p) { if (frame.op === "error") this._emit("error", frame); return; }
        this._pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.op === "error") p.reject(new WirehubError(frame.code, frame.message));
        else p.resolve(frame.op === "pong" ? frame : frame.result);
        return;
      }
      case "message": {
        this.received[frame.channel] = (this.received[frame.channel] ?? 0) + 1;
        const sub = this.subscriptions.get(frame.channel);
        if (sub?.active) this._guard(() => sub._message(frame));
        return this._emit("message", frame);
      }
      case "join": case "leave": case "event": {
        const sub = this.subscriptions.get(frame.channel);
        const key = { join: "onJoin", leave: "onLeave", event: "onEvent" }[frame.op];
        if (sub?.active) this._guard(() => sub.opts[key]?.(frame));
        return this._emit(frame.op, frame);
      }
      default: return undefined; // unknown ops are ignored (forward compatibility)
    }
  }

  _guard(fn) {
    try { fn(); } catch (err) { console.error("wirehub handler", err); }
  }

  async _welcome(frame) {
    this.clientId = frame.client;
    this.node = frame.node;
    if (frame.auth === "required" && this.options.getToken) {
      // the token travels in a frame, never in the URL (docs/security.md)
      try {
        await this._send("connect", { token: await this.options.getToken() });
      } catch (err) {
        this._emit("error", err); // the server closes with 4500 (final)
        return;
      }
    }
    this.attempt = 0;
    this._ceiling = this.options.backoffBase; // a good connection: backoff starts over
    this._setState(State.OPEN, { welcome: frame });
    this._guard(() => this.options.onOpen?.(frame));
    for (const sub of this.subscriptions.values()) this._subscribeOnWire(sub);
  }

  async _refresh() {
    // the server asks before the token expires: a new one, same connection
    if (!this.options.getToken) return;
    try {
      await this._request("refresh", { token: await this.options.getToken() });
    } catch (err) {
      this._emit("error", err);
    }
  }

  // -- requests ---------------------------------------------------------------------
  _request(op, fields = {}) {
    if (this.state !== State.OPEN || !this._ws) {
      return Promise.reject(new WirehubError("not_connected", `cannot ${op}: connection ${this.state}`));
    }
    return this._send(op, fields);
  }

  _send(op, fields) {
    if (!this._ws) return Promise.reject(new WirehubError("not_connected", `cannot ${op}`));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new WirehubError("timeout", `no answer to ${op} within ${this.options.requestTimeout} s`));
      }, this.options.requestTimeout * 1000);
      this._pending.set(id, { resolve, reject, timer });
      this._ws.send(JSON.stringify({ op, id, ...fields }));
    });
  }

  /**
   * Subscribe to `channel`; `handler(frame)` gets every message push, in offset
   * order and never twice. Returns the Subscription (await `sub.ready`).
   */
  subscribe(channel, handler, opts = {}) {
    const old = this.subscriptions.get(channel);
    if (old?.active) throw new WirehubError("bad_request", `already subscribed to ${channel}`);
    const sub = new Subscription(this, channel, handler, opts);
    if (opts.since) { sub.offset = opts.since.offset; sub.epoch = opts.since.epoch; }
    this.subscriptions.set(channel, sub);
    if (this.state === State.OPEN) this._subscribeOnWire(sub);
    return sub;
  }

  _subscribeOnWire(sub) {
    const since = sub.since;
    const fields = { channel: sub.channel };
    if (since) fields.since = since;
    if (sub.opts.maxRate) fields.max_rate = sub.opts.maxRate;
    this._request("subscribe", fields).then((result) => {
      if (!sub.active) return;
      if (!since || result.recovered === false) {
        // a fresh subscribe, or the old position is gone: count from the reply on
        sub.offset = result.offset;
        sub.epoch = result.epoch;
      }
      sub.subscribed += 1;
      sub._resolve(result);
      this._guard(() => sub.opts.onSubscribed?.(result, sub.subscribed > 1));
      if (since && result.recovered === false) this._guard(() => sub.opts.onRecoveryFailed?.(result));
    }, (err) => {
      if (err.code === "disconnected" || err.code === "not_connected") return; // retried on reconnect
      // no answer: start over on a new connection, which subscribes again
      if (err.code === "timeout") { this._ws?.close(4002, "subscribe timed out"); return; }
      sub.active = false;
      if (this.subscriptions.get(sub.channel) === sub) this.subscriptions.delete(sub.channel);
      sub._reject(err);
      this._guard(() => sub.opts.onError?.(err));
    });
  }

  /** Stop the subscription to `channel`. */
  async unsubscribe(channel) {
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    sub.active = false;
    this.subscriptions.delete(channel);
    if (this.state === State.OPEN) await this._request("unsubscribe", { channel });
  }

  publish(channel, data) { return this._request("publish", { channel, data }); }

  send(type, data) { return this._request("send", { type, data }); }

  /** Stored messages of `channel`: {messages, offset, epoch}. */
  history(channel, { limit, since } = {}) {
    const fields = { channel };
    if (limit !== undefined) fields.limit = limit;
    if (since !== undefined) fields.since = since;
    return this._request("history", fields);
  }

  /** Who is in `channel`: {clients: [{client, user, info}]}. */
  presence(channel) { return this._request("presence", { channel }); }

  presenceStats(channel) { return this._request("presence_stats", { channel }); }

  /** Round trip to the server; resolves with the time it took in milliseconds. */
  async ping() {
    const start = performance.now();
    await this._request("ping");
    return performance.now() - start;
  }
}
