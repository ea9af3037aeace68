/**
 * The wirehub demo page: one WirehubClient shared by the connection indicator,
 * the chat panel (chat.js) and the stocks panel (stocks.js).
 *
 * Query parameters (for demos and tests): `backoff_base` and `backoff_cap`, in
 * seconds, tune the reconnection backoff (defaults 0.5 and 30).
 *
 * For debugging and the browser tests the page exposes `window.wirehubClient`
 * and `window.wirehubApp` ({chat, stocks, reconnects}).
 */
import { $ } from "./dom.js";
import { ChatPanel } from "./chat.js";
import { StocksPanel } from "./stocks.js";
import { WirehubClient } from "./wirehub.js";

const PING_EVERY_MS = 15000;

function seconds(params, name, fallback, max) {
  const value = Number(params.get(name));
  return params.has(name) && Number.isFinite(value) && value > 0 ? Math.min(value, max) : fallback;
}

const params = new URLSearchParams(location.search);
const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const ui = {
  conn: $("#conn"), state: $("#conn-state"), detail: $("#conn-detail"),
  attempts: $("#conn-attempts"), reconnects: $("#conn-reconnects"), clientId: $("#client-id"),
};
const app = { chat: null, stocks: null, reconnects: 0, opened: 0 };
let pingTimer = null;

function showState(state, info) {
  ui.conn.dataset.state = state;
  document.body.dataset.conn = state; // panels dim while what they show may be stale
  ui.state.textContent = state;
  ui.attempts.textContent = String(info.attempt);
  let detail = "";
  if (state === "connecting") {
    detail = info.attempt ? `reconnecting, attempt ${info.attempt}…` : "connecting…";
  } else if (state === "open") {
    detail = `node ${info.welcome?.node ?? ""}`;
  } else if (state === "closed" && info.final) {
    detail = `closed for good (code ${info.code ?? "?"}); reload the page to reconnect`;
  } else if (state === "closed") {
    detail = `lost (code ${info.code}); retry ${info.attempt} in ${(info.delay ?? 0).toFixed(1)} s`;
  }
  ui.detail.textContent = detail;
  ui.conn.title = detail;
  if (state !== "open") {
    clearInterval(pingTimer);
    pingTimer = null;
  }
}

function onOpen(welcome) {
  app.opened += 1;
  if (app.opened > 1) app.reconnects += 1;
  ui.reconnects.textContent = String(app.reconnects);
  ui.clientId.textContent = welcome.client;
  app.chat.onOpen(welcome);
  app.stocks.onOpen(welcome);
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    client.ping().then((ms) => {
      ui.detail.textContent = `node ${client.node} · ${ms.toFixed(0)} ms`;
    }, () => {});
  }, PING_EVERY_MS);
}

const client = new WirehubClient(url, {
  backoffBase: seconds(params, "backoff_base", 0.5, 60),
  backoffCap: seconds(params, "backoff_cap", 30, 300),
  onStateChange: showState,
  onOpen,
});
client.on("error", (frame) => console.warn("wirehub error", frame.code, frame.message));

app.chat = new ChatPanel(client);
app.stocks = new StocksPanel(client);
app.chat.start();
app.stocks.start();

window.wirehubClient = client;
window.wirehubApp = app;
