// The load generator of `wirehub bench`: one Node.js process, one core, the
// same code for every server. Usage: node loadgen.mjs '<json config>'.
//
// It prints one JSON line on stdout: {"results": [record, ...]} where each
// record has the scenario's figures plus the CPU use of the load generator and
// of the server over the measured window (utime+stime from /proc/PID/stat).
// Progress goes to stderr. Every phase is bounded in time: nothing waits forever.
//
// Server kinds:
//   wirehub   /echo (raw echo) and /ws (protocol v1: welcome, subscribe, publish, send)
//   raw       the peers' /echo, /broadcast (to every other client) and /pubsub
//   socketio  python-socketio through socket.io-client (WebSocket transport only)
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';

const cfg = JSON.parse(process.argv[2]);
const KIND = cfg.kind;
const BASE = cfg.url; // ws://127.0.0.1:PORT
const CLK_TCK = cfg.clk_tck || 100;
const SOURCES = cfg.source_addresses && cfg.source_addresses.length ? cfg.source_addresses : [null];
let io = null;
if (KIND === 'socketio') ({ io } = await import('socket.io-client'));

const now = () => performance.now(); // ms, monotonic, sub-microsecond
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`loadgen: ${a.join(' ')}\n`);
const pad = (n) => 'x'.repeat(Math.max(0, n));

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// -- /proc --------------------------------------------------------------------------
function cpuTicks(pid, field = 'both') {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(f[11]), stime = Number(f[12]); // fields 14, 15
    return field === 'stime' ? stime : utime + stime;
  } catch { return NaN; }
}
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}
// busy ticks of the whole machine, less interrupts (our own loopback traffic)
function machineBusy() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return f[0] + f[1] + f[2] + f[7];
  } catch { return NaN; }
}
// CPU use between start() and stop(), in % of one core: this process, the server,
// and everything else on the machine (another program competing for the cores)
function cpuWindow() {
  const t0 = now(), me0 = cpuTicks(process.pid), sv0 = cpuTicks(cfg.server_pid), all0 = machineBusy();
  const sys0 = cpuTicks(cfg.server_pid, 'stime');
  return () => {
    const secs = (now() - t0) / 1000;
    const pct = (ticks) => Math.round((1000 * ticks) / CLK_TCK / secs) / 10;
    const me = cpuTicks(process.pid) - me0, sv = cpuTicks(cfg.server_pid) - sv0;
    const other = Math.max(0, machineBusy() - all0 - me - sv);
    // server_sys_cpu: the part of server_cpu spent in the kernel (system calls)
    return { lg_cpu: pct(me), server_cpu: pct(sv), server_sys_cpu: pct(cpuTicks(cfg.server_pid, 'stime') - sys0),
      other_cpu: pct(other) };
  };
}

// -- connections --------------------------------------------------------------------
// A Conn hides the transport: `send(text)`, `onFrame(buf|value)`, `close()`.
let sourceIndex = 0;
function nextSource() { return SOURCES[sourceIndex++ % SOURCES.length]; }

function openWs(path, { welcome = false } = {}) {
  return new Promise((resolve, reject) => {
    // no permessage-deflate offered to anyone; the load generator trusts the UTF-8 it gets
    const opts = { perMessageDeflate: false, handshakeTimeout: 10000, skipUTF8Validation: true };
    const src = nextSource();
    if (src) opts.localAddress = src;
    const ws = new WebSocket(BASE + path, opts);
    const conn = { ws, onFrame: null, send: (s) => ws.send(s), close: () => ws.terminate() };
    ws.on('error', (e) => { if (!conn.opened) reject(e); else conn.errors = (conn.errors || 0) + 1; });
    ws.on('close', () => { conn.closed = true; });
    if (welcome) {
      ws.once('message', () => {
        conn.opened = true;
        ws.on('message', (data) => conn.onFrame(data));
        resolve(conn);
      });
    } else {
      ws.on('open', () => { conn.opened = true; resolve(conn); });
      ws.on('message', (data) => conn.onFrame(data));
    }
  });
}

function openSocketIo() {
  return new Promise((resolve, reject) => {
    const opts = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 10000,
      perMessageDeflate: false };
    const src = nextSource();
    if (src) opts.localAddress = src;
    const sock = io(BASE.replace(/^ws/, 'http'), opts);
    const conn = { sock, onFrame: null, close: () => sock.disconnect() };
    sock.on('connect_error', (e) => { if (!conn.opened) reject(e); });
    sock.on('connect', () => { conn.opened = true; resolve(conn); });
    sock.on('echo', (d) => conn.onFrame(d));
    sock.on('message', (d) => conn.onFrame(d));
  });
}

// the path (or socket.io) each use opens
function openFor(use) {
  if (KIND === 'socketio') return openSocketIo();
  if (use === 'echo') return openWs('/echo');
  if (KIND === 'wirehub') return openWs('/ws', { welcome: true });
  return openWs(use === 'channels' ? '/pubsub' : '/broadcast');
}

// open n connections, at most `concurrency` handshakes at a time
async function openMany(n, use, concurrency = 64) {
  const conns = new Array(n);
  let next = 0, failed = 0;
  const firstErrors = [];
  async function worker() {
    while (next < n) {
      const i = next++;
      try {
        conns[i] = await withTimeout(openFor(use), 15000, 'handshake');
      } catch (e) {
        failed++;
        if (firstErrors.length < 3) firstErrors.push(String(e.message || e));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  if (failed) log(`${failed} of ${n} connections failed: ${firstErrors.join('; ')}`);
  return { conns: conns.filter(Boolean), failed, firstErrors };
}

function closeAll(conns) { for (const c of conns) { try { c.close(); } catch { /* gone */ } } }

// -- requests that need an answer (subscribe) ------------------------------------------
// Subscribe `conn` to `channels`; resolve when every one is acknowledged.
function subscribeAll(conn, channels) {
  return new Promise((resolve, reject) => {
    if (channels.length === 0) { resolve(); return; }
    let left = channels.length;
    const done = () => { if (--left === 0) resolve(); };
    if (KIND === 'socketio') {
      for (const ch of channels) conn.sock.emit('subscribe', ch, done);
      return;
    }
    conn.onFrame = (data) => {
      const msg = JSON.parse(data);
      if (msg.op === 'reply' || msg.op === 'subscribed') done();
      else if (msg.op === 'error') reject(new Error(`subscribe refused: ${msg.message}`));
    };
    channels.forEach((ch, i) => {
      if (KIND === 'wirehub') conn.send(JSON.stringify({ op: 'subscribe', id: i + 1, channel: ch }));
      else conn.send(JSON.stringify({ op: 'subscribe', channel: ch }));
    });
  });
}

// Publish `data` (an object with `t`) on `channel`; `null` channel = the fan-out broadcast.
function publisher(conn, channelMode) {
  if (KIND === 'socketio') {
    return channelMode
      ? (channel, data) => conn.sock.emit('publish_to', channel, data)
      : (_channel, data) => conn.sock.emit('publish', data);
  }
  if (KIND === 'wirehub') {
    return (channel, data) => conn.send(`{"op":"publish","channel":"${channel}","data":${JSON.stringify(data)}}`);
  }
  return channelMode
    ? (channel, data) => conn.send(`{"op":"publish","channel":"${channel}","data":${JSON.stringify(data)}}`)
    : (_channel, data) => conn.send(JSON.stringify(data));
}

// the publish timestamp carried by a delivery
function deliveryTime(frame) {
  if (KIND === 'socketio') return frame.t;
  const msg = JSON.parse(frame);
  return KIND === 'wirehub' || msg.op === 'publish' ? msg.data.t : msg.t;
}

function watchErrors(conn) {
  // the publisher of wirehub gets nothing back unless something is wrong (fire-and-forget)
  const state = { errors: 0, first: null };
  conn.onFrame = (data) => {
    state.errors++;
    if (!state.first) state.first = String(data).slice(0, 200);
  };
  return state;
}

// -- scenarios ----------------------------------------------------------------------
const W = (cfg.warmup ?? 1) * 1000; // ms
const D = (cfg.duration ?? 5) * 1000;

async function echo({ rpc = false }) {
  const n = cfg.connections ?? 50, depth = cfg.depth ?? 16, size = cfg.size ?? 100;
  const { conns, failed } = await openMany(n, rpc ? 'rpc' : 'echo');
  if (!conns.length) throw new Error('no connection could be opened');
  let count = 0, bad = 0, firstBad = null;
  let send;
  if (rpc) {
    // {"op":"send","id":N,"type":"echo","data":"xxx"}: the whole frame is `size` bytes
    const overhead = JSON.stringify({ op: 'send', id: 1000000, type: 'echo', data: '' }).length;
    const data = pad(size - overhead);
    let id = 1000000;
    send = (c) => c.send(`{"op":"send","id":${id++},"type":"echo","data":"${data}"}`);
  } else if (KIND === 'socketio') {
    const data = pad(size);
    send = (c) => c.sock.emit('echo', data);
  } else {
    const data = pad(size);
    send = (c) => c.send(data);
  }
  for (const c of conns) {
    let checked = 0;
    c.onFrame = (data) => {
      count++;
      if (rpc && checked < 3) { // the first answers of each connection must be replies
        checked++;
        const msg = JSON.parse(data);
        if (msg.op !== 'reply') { bad++; firstBad ??= String(data).slice(0, 200); }
      }
      send(c);
    };
    for (let i = 0; i < depth; i++) send(c);
  }
  await sleep(W);
  const c0 = count, cpu = cpuWindow(), t0 = now();
  await sleep(D);
  const c1 = count, secs = (now() - t0) / 1000, usage = cpu();
  closeAll(conns);
  return [{
    scenario: rpc ? 'rpc' : 'echo', value: (c1 - c0) / secs, unit: 'msg/s',
    connections: conns.length, failed, depth, size, window_s: secs, errors: bad,
    first_error: firstBad, ...usage,
  }];
}

// subscribers + one publisher; `rate` null = as fast as the window allows
async function fanout({ rate = null, scenario }) {
  const nsubs = cfg.subscribers ?? 1000, size = cfg.size ?? 100;
  const windowMsgs = cfg.window ?? 8; // broadcasts in flight at most (max-rate mode)
  const { conns: subs, failed } = await openMany(nsubs, 'fanout');
  if (!subs.length) throw new Error('no subscriber could connect');
  if (KIND === 'wirehub') {
    await withTimeout(Promise.all(subs.map((c) => subscribeAll(c, ['bench']))), 60000, 'subscribe');
  }
  const { conns: [pub] } = await openMany(1, 'fanout');
  if (!pub) throw new Error('the publisher could not connect');
  const pubErrors = KIND === 'socketio' ? { errors: 0 } : watchErrors(pub);
  const publish = publisher(pub, false);
  const n = subs.length, data = { t: 0, s: 0, p: pad(size - 40) };
  let published = 0, received = 0, measuring = false, measureFrom = Infinity;
  const samples = rate ? new Float64Array(Math.ceil(rate * (W + D + 2000) / 1000) * n + 16) : null;
  let nsamples = 0;
  const send = () => { data.t = now(); data.s = published++; publish('bench', data); };
  const pump = () => { while ((published - received / n) < windowMsgs) send(); };
  // latency: every `every`-th subscriber (the last one included) parses its deliveries
  // for the timestamp; the others only count, which keeps the load generator's cost down
  const every = Math.max(1, Math.ceil(n / (cfg.sampled_subscribers ?? 100)));
  subs.forEach((c, i) => {
    if (rate && i % every === every - 1) {
      c.onFrame = (frame) => {
        received++;
        const t = deliveryTime(frame);
        if (t >= measureFrom && nsamples < samples.length) samples[nsamples++] = now() - t;
      };
    } else if (rate) {
      c.onFrame = () => { received++; };
    } else {
      c.onFrame = () => { received++; if (published - received / n < windowMsgs) pump(); };
    }
  });
  let timer = null;
  if (rate) { // fixed rate: publish k is due at start + k / rate
    const start = now(), period = 1000 / rate;
    const tick = () => {
      const due = Math.floor((now() - start) / period) + 1;
      while (published < due) send();
      timer = setTimeout(tick, Math.max(0, start + published * period - now()));
    };
    tick();
  } else {
    pump();
  }
  await sleep(W);
  measureFrom = now();
  const r0 = received, p0 = published, cpu = cpuWindow(), t0 = now();
  await sleep(D);
  const r1 = received, p1 = published, secs = (now() - t0) / 1000, usage = cpu();
  if (timer) clearTimeout(timer);
  const rec = {
    scenario, subscribers: n, failed, size, window_s: secs,
    publishes_per_s: (p1 - p0) / secs, deliveries_per_s: (r1 - r0) / secs,
    errors: pubErrors.errors, first_error: pubErrors.first ?? null, ...usage,
  };
  if (rate) {
    const until = now() + 1000; // let the last publishes arrive (bounded)
    while (received < published * n && now() < until) await sleep(20);
    const lat = samples.subarray(0, nsamples).sort();
    const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
    Object.assign(rec, {
      rate, value: q(0.99), unit: 'ms p99', p50_ms: q(0.5), p99_ms: q(0.99), p999_ms: q(0.999),
      sampled_subscribers: Math.floor(n / every),
      max_ms: lat.length ? lat[lat.length - 1] : NaN, samples: lat.length,
      lost: published * n - received,
    });
  } else {
    Object.assign(rec, { value: rec.deliveries_per_s, unit: 'deliveries/s', window: windowMsgs });
  }
  closeAll([...subs, pub]);
  return [rec];
}

// N idle connections: server RSS per connection, and the rate they were opened at
async function idle() {
  const n = cfg.connections ?? 10000;
  const before = rssKiB(cfg.server_pid);
  const cpu = cpuWindow(), t0 = now();
  const { conns, failed, firstErrors } = await openMany(n, 'idle', cfg.concurrency ?? 64);
  const secs = (now() - t0) / 1000, usage = cpu();
  await sleep((cfg.settle ?? 2) * 1000);
  const after = rssKiB(cfg.server_pid);
  const open = conns.filter((c) => !c.closed).length;
  closeAll(conns);
  const common = { connections: conns.length, requested: n, failed, first_errors: firstErrors,
    sources: SOURCES.filter(Boolean).length || 1 };
  return [
    { scenario: 'idle', value: (after - before) / Math.max(1, open), unit: 'KiB/conn',
      rss_before_kib: before, rss_after_kib: after, still_open: open, ...common,
      lg_cpu: null, server_cpu: null },
    { scenario: 'connect', value: conns.length / secs, unit: 'conn/s', window_s: secs,
      concurrency: cfg.concurrency ?? 64, ...common, ...usage },
  ];
}

// many channels, a few subscribers each; one publisher round-robin over the channels
async function channels() {
  const nch = cfg.channels ?? 10000, per = cfg.per_connection ?? 15, spc = cfg.subscribers_per_channel ?? 3;
  const nconns = Math.ceil((nch * spc) / per), size = cfg.size ?? 100;
  const before = rssKiB(cfg.server_pid);
  const { conns, failed } = await openMany(nconns, 'channels');
  const stride = nch / nconns; // connection i takes channels [i*stride, i*stride + per)
  const name = (j) => `c${j % nch}`;
  const t0 = now();
  let next = 0;
  await withTimeout(Promise.all(Array.from({ length: 32 }, async () => {
    while (next < conns.length) {
      const i = next++;
      const first = Math.floor(i * stride);
      await subscribeAll(conns[i], Array.from({ length: per }, (_, k) => name(first + k)));
    }
  })), 120000, 'subscribe');
  const subSecs = (now() - t0) / 1000;
  await sleep(500);
  const after = rssKiB(cfg.server_pid);
  const subsPerChannel = new Uint32Array(nch);
  conns.forEach((_, i) => { const f = Math.floor(i * stride); for (let k = 0; k < per; k++) subsPerChannel[(f + k) % nch]++; });
  const { conns: [pub] } = await openMany(1, 'channels');
  const pubErrors = KIND === 'socketio' ? { errors: 0 } : watchErrors(pub);
  const publish = publisher(pub, true);
  const windowDeliveries = cfg.window_deliveries ?? 8000;
  let expected = 0, received = 0, seq = 0;
  const data = { t: 0, s: 0, p: pad(size - 40) };
  const pump = () => {
    while (expected - received < windowDeliveries) {
      const j = seq++ % nch;
      data.t = now(); data.s = seq;
      expected += subsPerChannel[j];
      publish(name(j), data);
    }
  };
  for (const c of conns) c.onFrame = () => { received++; if (expected - received < windowDeliveries) pump(); };
  pump();
  await sleep(W);
  const r0 = received, s0 = seq, cpu = cpuWindow(), t1 = now();
  await sleep(D);
  const r1 = received, s1 = seq, secs = (now() - t1) / 1000, usage = cpu();
  closeAll([...conns, pub]);
  const subscriptions = conns.length * per;
  return [{
    scenario: 'channels', value: (r1 - r0) / secs, unit: 'deliveries/s', channels: nch,
    connections: conns.length, failed, subscriptions, subscribe_s: subSecs,
    publishes_per_s: (s1 - s0) / secs, deliveries_per_s: (r1 - r0) / secs, window_s: secs,
    kib_per_subscription: (after - before) / Math.max(1, subscriptions),
    rss_before_kib: before, rss_after_kib: after,
    errors: pubErrors.errors, first_error: pubErrors.first ?? null, ...usage,
  }];
}

const SCENARIOS = {
  echo: () => echo({ rpc: false }),
  rpc: () => echo({ rpc: true }),
  fanout: () => fanout({ scenario: 'fanout' }),
  latency: () => fanout({ rate: cfg.rate, scenario: `latency${cfg.rate}` }),
  idle,
  channels,
};

try {
  const run = SCENARIOS[cfg.scenario];
  if (!run) throw new Error(`unknown scenario ${cfg.scenario}`);
  const results = await withTimeout(run(), (cfg.timeout ?? 300) * 1000, cfg.scenario);
  process.stdout.write(JSON.stringify({ results }) + '\n');
  process.exit(0);
} catch (e) {
  process.stdout.write(JSON.stringify({ error: String(e.stack || e) }) + '\n');
  process.exit(1);
}
