"""``wirehub serve [module:app]``: run the hub."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.util
import logging
import os
import signal
import sys
from dataclasses import fields
from typing import Any

from ..app import App
from ..config import ServerConfig, load_config
from ..exceptions import BrokerError, ConfigError
from ..logs import setup_logging

__all__ = ["add_parser", "load_app", "run", "run_app", "say", "serve"]

log = logging.getLogger("wirehub.serve")

DEFAULT_APP = "wirehub.apps:default_app"


def add_settings(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`ServerConfig` field, grouped; None means "not given"."""
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file with settings (flags and WIREHUB_* variables win)")
    groups: dict[str, Any] = {}
    for f in fields(ServerConfig):
        group = f.metadata["group"]
        if group not in groups:
            title = {"server": "server", "limits": "limits",
                     "security": "security (docs/security.md)",
                     "operations": "operations (docs/operations.md)",
                     "stocks": "built-in stock feed (default app)"}[group]
            groups[group] = p.add_argument_group(title)
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        shown = "unset" if default is None else default
        help_text = argparse.SUPPRESS if f.metadata.get("hidden") else (
            f"{f.metadata['help']} (default: {shown}; env WIREHUB_{f.name.upper()})")
        if str(f.type).startswith("bool"):
            groups[group].add_argument(flag, dest=f.name, default=None, help=help_text,
                                       action=argparse.BooleanOptionalAction)
        else:
            groups[group].add_argument(flag, dest=f.name, default=None, help=help_text,
                                       metavar=f.name.upper(),
                                       choices=f.metadata.get("choices"))


def settings_from(args: argparse.Namespace) -> ServerConfig:
    """Defaults < --config file < WIREHUB_* < flags."""
    flags = {f.name: getattr(args, f.name, None) for f in fields(ServerConfig)}
    return load_config(flags, file=args.config)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the hub (HTTP + WebSocket on one port)")
    p.add_argument("app", nargs="?", default=DEFAULT_APP,
                   help="the app to serve, as module:attribute or path/to/file.py:attribute "
                   "(default: %(default)s)")
    add_settings(p)
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


def say(text: str) -> None:
    """Print ``text`` and a newline in one write.

    ``print`` writes the text and its newline separately when Python runs
    unbuffered (``PYTHONUNBUFFERED``, common in containers): the lines of
    ``--workers`` children sharing one stdout then interleave mid-line.
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    try:
        config = settings_from(args)
    except ConfigError as exc:
        print(f"wirehub: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    if config.workers > 1:
        from .workers import run_workers

        return run_workers(args.argv, config)
    if args.app == DEFAULT_APP:
        from ..apps import default_app

        app = default_app(stocks_rate=config.stocks_rate, stocks_seed=config.stocks_seed,
                          stocks_csv=config.stocks_csv,
                          stocks_symbols=list(config.stocks_symbols or ()) or None)
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
    except (ConfigError, BrokerError) as exc:
        print(f"wirehub: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the address is not ours...
        print(f"wirehub: cannot listen on {config.host}:{config.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    say(f"wirehub listening on {runner.url} (node {runner.node.name}, "
        f"broker {config.broker}, app {app.name})\n"
        f"  {runner.ws_url}/ws  protocol v1   {runner.ws_url}/echo  echo")
    if not runner.node.auth.enabled:
        log.warning("no authentication configured: every client is anonymous "
                    "(set --jwt-secret or --jwt-public-key to require tokens)")
    # What startup made (modules, classes, the app) lives as long as the process: out
    # of the collector's sight, a full collection walks only the clients' objects.
    gc.collect()
    gc.freeze()
    await stop.wait()
    log.info("shutting down: closing %d connections with 1001", len(runner.server.connections))
    await runner.stop()
    return 0
