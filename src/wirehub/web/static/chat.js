/**
 * The chat panel: rooms on channels `chat:<room>` (src/wirehub/apps/chat.py).
 *
 * Each joined room keeps its own message list (ordered by offset, each offset
 * shown once), presence map and typing map; the active room's are shown. On
 * join the last 50 messages come from `history`; after a reconnection the
 * client recovers missed messages itself (`since`), and when it cannot
 * (`recovered: false`) the room is cleared and its history loaded again.
 * Everything users typed is shown with textContent only (see dom.js).
 */
import { $, el, flash, store } from "./dom.js";

const ROOM_RE = /^[A-Za-z0-9_.@-]{1,100}$/;
const HISTORY = 50;
const MAX_SHOWN = 500; // messages kept per room
const MAX_TEXT = 2000;
const MAX_NICK = 32;
const TYPING_SHOWN_MS = 3000;
const TYPING_SEND_MS = 2000;

/** The name shown for a presence entry, as the server names a nickless client. */
function nameOf(entry) {
  return entry.info?.nick || entry.user || `guest-${String(entry.client).slice(0, 4)}`;
}

function timeOf(ts) {
  return ts ? new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

export class ChatPanel {
  constructor(client) {
    this.client = client;
    this.rooms = new Map(); // name -> room state
    this.active = null;
    this.myIds = new Set(); // this page's client ids, one per connection
    this.nick = store.get("nick", "");
    this.stats = { recovered: 0, reloaded: 0 };
    this.lastTypingSent = 0;
    this.ui = {
      nickForm: $("#nick-form"), nickInput: $("#nick-input"), nickCurrent: $("#nick-current"),
      roomForm: $("#room-form"), roomInput: $("#room-input"), roomList: $("#room-list"),
      roomTitle: $("#room-title"), messages: $("#messages"), typing: $("#typing"),
      form: $("#message-form"), input: $("#message-input"), error: $("#chat-error"),
      notice: $("#chat-notice"), presence: $("#presence"), presenceCount: $("#presence-count"),
    };
    this.ui.nickInput.value = this.nick;
    this.ui.nickCurrent.textContent = this.nick || "(guest)";
    this.ui.nickForm.addEventListener("submit", (ev) => { ev.preventDefault(); this.setNick(); });
    this.ui.roomForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (this.join(this.ui.roomInput.value.trim())) this.ui.roomInput.value = "";
    });
    this.ui.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.post(); });
    this.ui.input.addEventListener("input", () => this.typed());
  }

  /** Join the saved rooms (sent once the connection is open). */
  start() {
    const saved = store.get("rooms", ["lobby"]);
    for (const name of Array.isArray(saved) && saved.length ? saved : ["lobby"]) this.join(name);
    const first = this.rooms.keys().next().value;
    if (first) this.select(first);
  }

  /** Every (re)connection: remember our id and tell the server our nickname first. */
  onOpen(welcome) {
    this.myIds.add(welcome.client);
    if (this.nick) {
      this.client.send("chat.nick", { nick: this.nick }).catch((err) => this.error(err));
    }
  }

  error(err) {
    flash(this.ui.error, typeof err === "string" ? err : (err.detail ?? err.message));
  }

  async setNick() {
    const nick = this.ui.nickInput.value.trim();
    if (!nick || nick.length > MAX_NICK) return this.error(`A nickname has 1 to ${MAX_NICK} characters`);
    try {
      if (this.client.state === "open") await this.client.send("chat.nick", { nick });
    } catch (err) {
      return this.error(err);
    }
    this.nick = nick;
    store.set("nick", nick);
    this.ui.nickCurrent.textContent = nick;
    flash(this.ui.error, "");
    return undefined;
  }

  // -- rooms ---------------------------------------------------------------------------
  join(name) {
    if (!ROOM_RE.test(name)) {
      this.error("A room name has 1 to 100 letters, digits or _ . @ -");
      return false;
    }
    if (this.rooms.has(name)) { this.select(name); return true; }
    const room = {
      name, channel: `chat:${name}`, epoch: null, unread: 0,
      list: el("ol", { class: "message-list", "data-room": name }),
      items: new Map(), presence: new Map(), typing: new Map(),
    };
    room.button = el("button", { type: "button", class: "room-name" }, name);
    room.badge = el("span", { class: "badge", hidden: true });
    room.button.append(room.badge);
    room.button.addEventListener("click", () => this.select(name));
    const leave = el("button", { type: "button", class: "leave", title: "leave room",
      "aria-label": "leave room", "data-testid": "room-leave" }, "×");
    leave.addEventListener("click", () => this.leave(name));
    room.li = el("li", { "data-testid": "room" }, room.button, leave);
    room.li.dataset.room = name;
    this.ui.roomList.append(room.li);
    this.rooms.set(name, room);
    room.sub = this.client.subscribe(room.channel, (m) => this.message(room, m), {
      onSubscribed: (result, again) => this.subscribed(room, result, again),
      onRecoveryFailed: (result) => this.reload(room, result),
      onJoin: (f) => { room.presence.set(f.client, f); this.renderPresence(room); },
      onLeave: (f) => { room.presence.delete(f.client); this.stopTyping(room, f.client); },
      onEvent: (f) => { if (f.type === "typing") this.startTyping(room, f.data); },
      onError: (err) => { this.error(err); this.leave(name); },
    });
    this.save();
    this.select(name);
    return true;
  }

  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.rooms.delete(name);
    room.li.remove();
    this.client.unsubscribe(room.channel).catch(() => {});
    for (const t of room.typing.values()) clearTimeout(t.timer);
    this.save();
    if (this.active === room) {
      this.active = null;
      const next = this.rooms.keys().next().value;
      if (next) this.select(next); else this.render();
    }
  }

  save() { store.set("rooms", [...this.rooms.keys()]); }

  select(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.active = room;
    room.unread = 0;
    this.render();
  }

  render() {
    const room = this.active;
    for (const r of this.rooms.values()) {
      r.li.classList.toggle("active", r === room);
      r.badge.textContent = String(r.unread);
      r.badge.hidden = r.unread === 0;
    }
    this.ui.roomTitle.textContent = room ? `#${room.name}` : "no room: join one";
    this.ui.messages.replaceChildren(...(room ? [room.list] : []));
    this.ui.input.disabled = !room;
    this.renderPresence(room);
    this.renderTyping(room);
    this.scrollDown(true);
  }

  // -- messages ----------------------------------------------------------------------------
  subscribed(room, result, again) {
    if (!again) {
      room.epoch = result.epoch;
      this.loadHistory(room);
    } else if (result.recovered) {
      this.stats.recovered += 1;
      flash(this.ui.notice, `Reconnected to #${room.name}: missed messages recovered`);
    }
    for (const t of room.typing.values()) clearTimeout(t.timer);
    room.typing.clear();
    this.client.presence(room.channel).then((res) => {
      room.presence = new Map(res.clients.map((c) => [c.client, c]));
      this.renderPresence(room);
    }, () => {});
  }

  reload(room, result) {
    this.stats.reloaded += 1;
    room.epoch = result.epoch;
    room.items.clear();
    room.list.replaceChildren();
    flash(this.ui.notice, `Reconnected to #${room.name}: history reloaded`);
    this.loadHistory(room);
  }

  async loadHistory(room) {
    try {
      const res = await this.client.history(room.channel, { limit: HISTORY });
      for (const m of res.messages) if (m.epoch === room.epoch) this.insert(room, m);
      if (room === this.active) this.scrollDown(true);
    } catch (err) {
      this.error(err);
    }
  }

  message(room, m) {
    if (room.epoch !== m.epoch) { // history restarted: what is shown belongs to the old one
      room.epoch = m.epoch;
      room.items.clear();
      room.list.replaceChildren();
    }
    this.stopTyping(room, m.from);
    if (this.insert(room, m) && room !== this.active) {
      room.unread += 1;
      this.render();
    }
  }

  /** Put message `m` in offset order; false when that offset is already shown. */
  insert(room, m) {
    if (room.items.has(m.offset)) return false;
    const data = m.data && typeof m.data === "object" ? m.data : {};
    const li = el("li", { class: "msg", "data-testid": "message" },
      el("time", { class: "time" }, timeOf(m.ts)),
      el("span", { class: "nick", "data-testid": "message-nick" }, String(data.nick ?? "?")),
      el("span", { class: "text", "data-testid": "message-text" }, String(data.text ?? "")));
    li.dataset.offset = String(m.offset);
    if (this.myIds.has(m.from)) li.classList.add("mine");
    let after = room.list.lastElementChild;
    while (after && Number(after.dataset.offset) > m.offset) after = after.previousElementSibling;
    const stick = this.nearBottom();
    room.list.insertBefore(li, after ? after.nextElementSibling : room.list.firstElementChild);
    room.items.set(m.offset, li);
    while (room.items.size > MAX_SHOWN) {
      const first = room.list.firstElementChild;
      room.items.delete(Number(first.dataset.offset));
      first.remove();
    }
    if (room === this.active) this.scrollDown(stick);
    return true;
  }

  nearBottom() {
    const box = this.ui.messages;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  scrollDown(really) {
    if (really) this.ui.messages.scrollTop = this.ui.messages.scrollHeight;
  }

  async post() {
    const room = this.active;
    const text = this.ui.input.value;
    if (!room) return this.error("Join a room first");
    if (!text.trim()) return this.error("Type a message first");
    if (text.length > MAX_TEXT) return this.error(`At most ${MAX_TEXT} characters (this is ${text.length})`);
    try {
      await this.client.publish(room.channel, { text });
    } catch (err) {
      return this.error(err.code === "not_connected" ? "Not connected: the message was not sent" : err);
    }
    if (this.ui.input.value === text) this.ui.input.value = "";
    this.lastTypingSent = 0; // the next keystroke says "typing" again
    flash(this.ui.error, "");
    return undefined;
  }

  // -- presence and typing ------------------------------------------------------------------
  renderPresence(room) {
    if (room !== this.active) return;
    const entries = room ? [...room.presence.values()] : [];
    entries.sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
    this.ui.presence.replaceChildren(...entries.map((e) => {
      const li = el("li", { "data-testid": "presence-item" }, nameOf(e));
      li.dataset.client = e.client;
      if (this.myIds.has(e.client)) { li.classList.add("me"); li.append(el("span", { class: "you" }, " (you)")); }
      return li;
    }));
    this.ui.presenceCount.textContent = String(entries.length);
  }

  typed() {
    const room = this.active;
    const now = Date.now();
    if (!room || !this.ui.input.value.trim() || now - this.lastTypingSent < TYPING_SEND_MS) return;
    if (this.client.state !== "open") return;
    this.lastTypingSent = now;
    this.client.send("chat.typing", { room: room.name }).catch(() => {});
  }

  startTyping(room, data) {
    if (!data || this.myIds.has(data.client)) return;
    clearTimeout(room.typing.get(data.client)?.timer);
    const timer = setTimeout(() => this.stopTyping(room, data.client), TYPING_SHOWN_MS);
    room.typing.set(data.client, { nick: String(data.nick ?? "someone"), timer });
    this.renderTyping(room);
  }

  stopTyping(room, client) {
    const t = room.typing.get(client);
    if (t) { clearTimeout(t.timer); room.typing.delete(client); }
    this.renderPresence(room);
    this.renderTyping(room);
  }

  renderTyping(room) {
    if (room !== this.active) return;
    const names = room ? [...room.typing.values()].map((t) => t.nick) : [];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    this.ui.typing.textContent = text;
  }
}
