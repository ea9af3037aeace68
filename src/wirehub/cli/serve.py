"""``wirehub serve [module:app]``: run the hub."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
from typing import Any

from ..app import App
from ..config import ServerConfig
from ..exceptions import ConfigError

__all__ = ["add_parser", "load_app", "run", "run_app", "serve"]

log = logging.getLogger("wirehub.serve")

DEFAULT_APP = "wirehub.apps:default_app"


def _size(text: str) -> int:
    """Parse a byte size: 1048576, 1MiB, 64KiB, 16M."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    for suffix, m in (("k", 1024), ("m", 1024**2), ("g", 1024**3)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        return int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (e.g. 1048576, 64KiB, 1MiB)"
        ) from None


def add_parser(sub: Any) -> None:
    d = ServerConfig()
    p = sub.add_parser("serve", help="run the hub (HTTP + WebSocket on one port)")
    p.add_argument("app", nargs="?", default=DEFAULT_APP,
                   help="the app to serve, as module:attribute (default: %(default)s)")
    p.add_argument("--host", default=d.host, help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=d.port,
                   help="port to bind, 0 for any free port (default: %(default)s)")
    p.add_argument("--node-name", default=None, help="this node's name (default: host-pid)")
    p.add_argument("--broker", default=d.broker, help="broker URL (default: %(default)s)")
    p.add_argument("--max-message-size", type=_size, default=d.max_message_size,
                   help="largest /ws message; bigger ones close with 1009 (default: 1MiB)")
    p.add_argument("--echo-max-message-size", type=_size, default=d.echo_max_message_size,
                   help="largest /echo message (default: 16MiB + 1KiB)")
    p.add_argument("--max-queue", type=_size, default=d.max_queue,
                   help="outbound bytes queued per client before it is cut off as a slow "
                   "consumer with 4000 (default: 1MiB)")
    p.add_argument("--ping-interval", type=float, default=d.ping_interval,
                   help="seconds between server pings, 0 disables (default: %(default)s)")
    p.add_argument("--ping-timeout", type=float, default=d.ping_timeout,
                   help="seconds to wait for a pong before closing with 4001 "
                   "(default: %(default)s)")
    p.add_argument("--no-compression", dest="compression", action="store_false",
                   help="refuse permessage-deflate")
    sec = p.add_argument_group("security (docs/security.md)")
    sec.add_argument("--jwt-secret", default=os.environ.get("WIREHUB_JWT_SECRET"),
                     help="HS256 secret: clients must authenticate (env WIREHUB_JWT_SECRET)")
    sec.add_argument("--jwt-public-key", default=os.environ.get("WIREHUB_JWT_PUBLIC_KEY"),
                     metavar="FILE", help="PEM public key for RS256/ES256 tokens "
                     "(env WIREHUB_JWT_PUBLIC_KEY)")
    sec.add_argument("--allow-query-token", action="store_true",
                     help="also accept ?token= in the URL (tokens in URLs reach logs)")
    sec.add_argument("--connect-timeout", type=float, default=d.connect_timeout,
                     help="seconds a client without a token has to send its connect frame "
                     "(default: %(default)s)")
    sec.add_argument("--allowed-origins", default=None, metavar="LIST",
                     help="comma-separated Origins allowed to connect, or '*' "
                     "(default: the server's own host)")
    sec.add_argument("--certfile", default=None,
                     help="TLS certificate chain (PEM): serve https/wss")
    sec.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    sec.add_argument("--max-connections", type=int, default=d.max_connections,
                     help="connections in total; beyond: HTTP 503 (default: %(default)s)")
    sec.add_argument("--max-connections-per-ip", type=int, default=d.max_connections_per_ip,
                     help="connections from one address; beyond: HTTP 429 (default: %(default)s)")
    sec.add_argument("--max-messages-per-second", type=float, default=d.max_messages_per_second,
                     help="per connection; beyond: rate_limited, then 1008 "
                     "(default: %(default)s)")
    sec.add_argument("--max-bytes-per-second", type=_size, default=d.max_bytes_per_second,
                     help="per connection (default: 2MiB)")
    sec.add_argument("--max-subscriptions", type=int, default=d.max_subscriptions,
                     help="channels per connection (default: %(default)s)")
    sec.add_argument("--max-json-depth", type=int, default=d.max_json_depth,
                     help="nesting depth of JSON frames (default: %(default)s)")
    sec.add_argument("--handshake-timeout", type=float, default=d.handshake_timeout,
                     help="seconds to send the upgrade request (default: %(default)s)")
    g = p.add_argument_group("built-in stock feed (default app)")
    g.add_argument("--stocks-rate", type=float, default=1000.0,
                   help="ticks per second across all symbols (default: %(default)s)")
    g.add_argument("--stocks-seed", type=int, default=None,
                   help="seed for a reproducible simulated market")
    g.add_argument("--stocks-csv", default=None, help="replay ticks from this CSV file instead")
    g.add_argument("--stocks-symbols", default=None,
                   help="comma-separated symbols to trade (default: all)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes sharing the port (SO_REUSEPORT); more than one "
                   "needs a shared broker such as --broker redis://... (default: 1)")
    p.add_argument("--drain-period", type=float, default=d.drain_period,
                   help="on SIGTERM, spread the clients' 1001 closes over this many seconds "
                   "(default: %(default)s)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"], help="(default: %(default)s)")
    p.set_defaults(func=run)


def load_app(spec: str) -> App:
    """Load ``module:attr`` or ``path/to/file.py:attr`` (attr defaults to ``app``).

    A callable attribute (a factory) is called; the result must be an App.
    """
    module_name, _, attr = spec.rpartition(":") if spec.count(":") else (spec, "", "")
    if module_name.endswith(".py"):
        path = os.path.abspath(module_name)
        loader = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(path))[0], path
        )
        if loader is None or loader.loader is None:
            raise SystemExit(f"wirehub: cannot load {path}")
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    app = getattr(module, attr or "app")
    if callable(app) and not isinstance(app, App):
        app = app()
    if not isinstance(app, App):
        raise SystemExit(f"wirehub: {spec} is {type(app).__name__}, not a wirehub.App")
    return app


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        node_name=args.node_name,
        broker=args.broker,
        max_message_size=args.max_message_size,
        echo_max_message_size=args.echo_max_message_size,
        max_queue=args.max_queue,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        compression=args.compression,
        jwt_secret=args.jwt_secret or None,
        jwt_public_key=args.jwt_public_key or None,
        allow_query_token=args.allow_query_token,
        connect_timeout=args.connect_timeout,
        allowed_origins=tuple(o.strip() for o in args.allowed_origins.split(",") if o.strip())
        if args.allowed_origins else None,
        certfile=args.certfile,
        keyfile=args.keyfile,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_messages_per_second=args.max_messages_per_second,
        max_bytes_per_second=args.max_bytes_per_second,
        max_subscriptions=args.max_subscriptions,
        max_json_depth=args.max_json_depth,
        handshake_timeout=args.handshake_timeout,
        drain_period=args.drain_period,
        workers=args.workers,
        reuse_port=args.reuse_port,
    )
    if args.workers > 1:
        from .workers import run_workers

        return run_workers(args.argv, config)
    if args.app == DEFAULT_APP:
        from ..apps import default_app

        symbols = args.stocks_symbols.split(",") if args.stocks_symbols else None
        app = default_app(stocks_rate=args.stocks_rate, stocks_seed=args.stocks_seed,
                          stocks_csv=args.stocks_csv, stocks_symbols=symbols)
    else:
        app = load_app(args.app)
    return run_app(app, config)


def run_app(app: App, config: ServerConfig) -> int:
    """Serve ``app`` until SIGTERM/SIGINT on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(app, config))
    return uvloop.run(serve(app, config))


async def serve(app: App, config: ServerConfig) -> int:
    """Run until SIGTERM or SIGINT, then close every client with 1001 and return 0."""
    from ..transport.runner import ServerRunner

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before anyone can know we listen
        loop.add_signal_handler(sig, stop.set)
    try:
        runner = await ServerRunner(app, config).start()
    except ConfigError as exc:
        print(f"wirehub: {exc}", file=sys.stderr)
        return 2
    print(f"wirehub listening on {runner.url} (node {runner.node.name}, "
          f"broker {config.broker}, app {app.name})", flush=True)
    print(f"  {runner.ws_url}/ws  protocol v1   {runner.ws_url}/echo  echo", flush=True)
    if not runner.node.auth.enabled:
        log.warning("no authentication configured: every client is anonymous "
                    "(set --jwt-secret or --jwt-public-key to require tokens)")
    await stop.wait()
    log.info("shutting down: closing %d connections with 1001", len(runner.server.connections))
    await runner.stop()
    return 0
