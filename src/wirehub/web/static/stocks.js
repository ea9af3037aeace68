/**
 * The stocks panel: a watchlist of `stocks:<SYMBOL>` channels
 * (src/wirehub/apps/stocks/).
 *
 * Each watched symbol is one subscription capped with `max_rate` (the server
 * conflates: only the newest tick waits), without recovery (a stale tick is no
 * use: a resubscribe gets the latest one as a snapshot). Prices are green after
 * an up tick and red after a down tick; an inline SVG sparkline shows the last
 * prices. `send stocks.symbols` fills the symbol picker. Symbols not watched are
 * never subscribed, so they never reach the page.
 */
import { $, el, flash, store, svg } from "./dom.js";

export const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "GOOG", "AMZN"];
export const MAX_RATE = 10; // messages per second per symbol
const SYMBOL_RE = /^[A-Z0-9.-]{1,12}$/;
const POINTS = 60; // prices kept for the sparkline
const SPARK_W = 96;
const SPARK_H = 28;

function fmtPrice(p) {
  return typeof p === "number" && Number.isFinite(p) ? p.toFixed(p >= 1 ? 2 : 4) : "—";
}

function fmtSigned(x, suffix = "") {
  if (typeof x !== "number" || !Number.isFinite(x)) return "—";
  return `${x > 0 ? "+" : ""}${x.toFixed(2)}${suffix}`;
}

function sign(x) { return x > 0 ? "pos" : x < 0 ? "neg" : "flat"; }

export class StocksPanel {
  constructor(client) {
    this.client = client;
    this.rows = new Map(); // symbol -> row state
    this.known = new Map(); // symbol -> {symbol, name, price, ...} from stocks.symbols
    this.ui = {
      form: $("#symbol-form"), input: $("#symbol-input"), options: $("#symbol-options"),
      body: $("#watchlist-body"), error: $("#stocks-error"), empty: $("#watchlist-empty"),
      status: $("#stocks-status"),
    };
    this.ui.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (this.watch(this.ui.input.value.trim().toUpperCase())) this.ui.input.value = "";
    });
  }

  start() {
    const saved = store.get("watchlist", DEFAULT_WATCHLIST);
    for (const symbol of Array.isArray(saved) ? saved : DEFAULT_WATCHLIST) this.watch(symbol);
    this.renderEmpty();
  }

  /** Every (re)connection: ask for the symbol list with the latest prices. */
  onOpen() {
    this.client.send("stocks.symbols", {}).then((list) => {
      this.known = new Map(list.map((s) => [s.symbol, s]));
      this.ui.options.replaceChildren(...list.map((s) => {
        const option = el("option", {}, s.name ? `${s.symbol} · ${s.name}` : s.symbol);
        option.value = s.symbol;
        return option;
      }));
      for (const row of this.rows.values()) this.describe(row);
      this.ui.status.textContent = `${list.length} symbols · max ${MAX_RATE} updates/s each`;
    }, (err) => {
      this.ui.status.textContent = err.code === "unknown_op"
        ? "This server has no stock feed." : `Symbols unavailable: ${err.detail ?? err.message}`;
    });
  }

  watch(symbol) {
    if (!SYMBOL_RE.test(symbol)) {
      flash(this.ui.error, "A symbol has 1 to 12 capital letters, digits, . or -");
      return false;
    }
    if (this.rows.has(symbol)) { flash(this.ui.error, `${symbol} is already in the watchlist`); return false; }
    if (this.known.size && !this.known.has(symbol)) { flash(this.ui.error, `Unknown symbol ${symbol}`); return false; }
    const row = this.makeRow(symbol);
    this.rows.set(symbol, row);
    this.ui.body.append(row.tr);
    this.describe(row);
    row.sub = this.client.subscribe(`stocks:${symbol}`, (m) => this.tick(row, m.data), {
      maxRate: MAX_RATE,
      recover: false,
      onError: (err) => { flash(this.ui.error, `${symbol}: ${err.detail ?? err.message}`); this.unwatch(symbol); },
    });
    this.save();
    this.renderEmpty();
    flash(this.ui.error, "");
    return true;
  }

  unwatch(symbol) {
    const row = this.rows.get(symbol);
    if (!row) return;
    this.rows.delete(symbol);
    row.tr.remove();
    this.client.unsubscribe(`stocks:${symbol}`).catch(() => {});
    this.save();
    this.renderEmpty();
  }

  save() { store.set("watchlist", [...this.rows.keys()]); }

  renderEmpty() { this.ui.empty.hidden = this.rows.size > 0; }

  makeRow(symbol) {
    const cells = {
      symbol: el("td", { class: "symbol" }, el("strong", {}, symbol), el("small", { class: "name" })),
      price: el("td", { class: "price", "data-testid": "stock-price" }, "—"),
      change: el("td", { class: "change", "data-testid": "stock-change" }, "—"),
      pct: el("td", { class: "pct", "data-testid": "stock-pct" }, "—"),
      spark: el("td", { class: "spark" }),
      remove: el("td", {}),
    };
    const line = svg("polyline", { fill: "none", "stroke-width": 1.5, points: "" });
    const chart = svg("svg", { width: SPARK_W, height: SPARK_H, viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
      class: "sparkline", role: "img", "aria-label": `${symbol} recent prices`, "data-testid": "sparkline" });
    chart.append(line);
    cells.spark.append(chart);
    const button = el("button", { type: "button", class: "remove", title: `stop watching ${symbol}`,
      "aria-label": `remove ${symbol}`, "data-testid": "stock-remove" }, "×");
    button.addEventListener("click", () => this.unwatch(symbol));
    cells.remove.append(button);
    const tr = el("tr", { "data-testid": "stock-row" }, ...Object.values(cells));
    tr.dataset.symbol = symbol;
    tr.dataset.ticks = "0";
    return { symbol, tr, cells, line, prices: [], last: null, ticks: 0 };
  }

  /** Name and, before the first tick, the latest price from stocks.symbols. */
  describe(row) {
    const info = this.known.get(row.symbol);
    if (!info) {
      if (this.known.size) row.cells.symbol.querySelector(".name").textContent = "unknown symbol";
      return;
    }
    row.cells.symbol.querySelector(".name").textContent = info.name ?? "";
    if (row.ticks === 0) this.show(row, info);
  }

  tick(row, data) {
    if (!data || typeof data.price !== "number" || !this.rows.has(row.symbol)) return;
    row.ticks += 1;
    row.tr.dataset.ticks = String(row.ticks);
    const prev = row.last;
    if (prev !== null && data.price !== prev) {
      row.tr.dataset.direction = data.price > prev ? "up" : "down";
      row.cells.price.className = `price ${row.tr.dataset.direction}`;
    }
    row.last = data.price;
    row.prices.push(data.price);
    if (row.prices.length > POINTS) row.prices.shift();
    this.show(row, data);
    this.drawSparkline(row);
  }

  show(row, data) {
    const arrow = { up: "▲ ", down: "▼ " }[row.tr.dataset.direction] ?? "";
    row.cells.price.textContent = `${arrow}${fmtPrice(data.price)}`;
    row.cells.change.textContent = fmtSigned(data.change);
    row.cells.change.className = `change ${sign(data.change)}`;
    row.cells.pct.textContent = fmtSigned(data.change_pct, "%");
    row.cells.pct.className = `pct ${sign(data.change_pct)}`;
  }

  drawSparkline(row) {
    const ps = row.prices;
    if (ps.length < 2) return;
    const lo = Math.min(...ps);
    const hi = Math.max(...ps);
    const span = hi - lo || 1;
    const step = SPARK_W / (POINTS - 1);
    const x0 = SPARK_W - (ps.length - 1) * step;
    const points = ps.map((p, i) => `${(x0 + i * step).toFixed(1)},${(SPARK_H - 2 - ((p - lo) / span) * (SPARK_H - 4)).toFixed(1)}`);
    row.line.setAttribute("points", points.join(" "));
    row.line.setAttribute("class", ps[ps.length - 1] >= ps[0] ? "up" : "down");
  }
}
