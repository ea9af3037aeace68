// The Node `ws` peer for `wirehub bench`: one http server, three WebSocketServers
// (noServer), written as in the ws README ("multiple servers sharing a single
// HTTP server", "broadcast to every other client"). Usage: node ws_peer.mjs PORT
import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2]);
const opts = { noServer: true, perMessageDeflate: false };
const echo = new WebSocketServer(opts);
const broadcast = new WebSocketServer({ ...opts, clientTracking: true });
const pubsub = new WebSocketServer(opts);
const routes = { '/echo': echo, '/broadcast': broadcast, '/pubsub': pubsub };
const channels = new Map(); // channel -> Set<WebSocket>

echo.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

broadcast.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of broadcast.clients) {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});

pubsub.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    if (msg.op === 'subscribe') {
      let subs = channels.get(msg.channel);
      if (!subs) channels.set(msg.channel, (subs = new Set()));
      subs.add(ws);
      mine.add(msg.channel);
      ws.send(JSON.stringify({ op: 'subscribed', channel: msg.channel }));
    } else if (msg.op === 'publish') {
      const subs = channels.get(msg.channel);
      if (subs) for (const sub of subs) sub.send(data, { binary: false });
    }
  });
  ws.on('close', () => { for (const ch of mine) channels.get(ch)?.delete(ws); });
});

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
server.on('upgrade', (req, socket, head) => {
  const wss = routes[req.url];
  if (!wss) { socket.destroy(); return; }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(port, '127.0.0.1', () => console.log('peer listening'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
