"""``wirehub publish URL CHANNEL JSON`` and ``wirehub subscribe URL CHANNEL``.

Both speak protocol v1 through :mod:`wirehub.client`. ``URL`` may be the
server's base (``ws://127.0.0.1:8765``) or the full ``.../ws``.

* ``publish`` prints the reply as one JSON line, ``{"offset": N}``.
* ``subscribe`` prints one JSON line per message (``channel``, ``data``,
  ``offset``, ``epoch``, ``from``, ``ts``), flushed at once, so it pipes well
  into ``jq``. With ``--count N`` it exits after N messages. It reconnects
  and resubscribes by itself; a line on stderr says when it is subscribed.

Exit status: 0 on success, 1 when the server refused or the connection
ended for good, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client import connect
from ..core.codec import CODECS, JSON
from ..exceptions import WirehubError
from .connect import parse_header, run_main

__all__ = ["add_parser", "publish", "run_publish", "run_subscribe", "subscribe"]


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc} (quote strings: '\"hi\"')") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="server URL: ws://HOST:PORT or ws://HOST:PORT/ws")
    p.add_argument("channel", help="channel name, e.g. news or chat:lobby")
    p.add_argument("-s", "--subprotocol", default=JSON.name, choices=sorted(CODECS),
                   help="wire encoding (default: %(default)s)")
    p.add_argument("-H", "--header", action="append", default=[], type=parse_header,
                   metavar="'NAME: VALUE'", help="add an HTTP header to the upgrade request")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait to connect and for each reply (default: %(default)s)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("publish", help="publish one message on a channel",
                       description="Publish JSON data on a channel; print {\"offset\": N}.")
    _common(p)
    p.add_argument("data", type=_json_value, help="the message, as JSON")
    p.set_defaults(func=run_publish)

    p = sub.add_parser("subscribe", help="print a channel's messages as JSON lines",
                       description="Subscribe to a channel and print each message as a "
                       "JSON line.")
    _common(p)
    p.add_argument("-n", "--count", type=int, default=None, metavar="N",
                   help="exit after N messages (default: run until interrupted)")
    p.set_defaults(func=run_subscribe)


def _options(args: argparse.Namespace, *, reconnect: bool) -> dict[str, Any]:
    return {"subprotocol": args.subprotocol, "headers": dict(args.header),
            "reconnect": reconnect, "request_timeout": args.timeout,
            "open_timeout": args.timeout}


def _fail(exc: BaseException) -> int:
    print(f"wirehub: {exc}", file=sys.stderr)
    return 1


def run_publish(args: argparse.Namespace) -> int:
    return run_main(publish(args.url, args.channel, args.data,
                            **_options(args, reconnect=False)))


def run_subscribe(args: argparse.Namespace) -> int:
    return run_main(subscribe(args.url, args.channel, count=args.count,
                              **_options(args, reconnect=True)))


async def publish(url: str, channel: str, data: Any, **options: Any) -> int:
    """Publish once and print ``{"offset": N}``; return the exit status."""
    try:
        async with connect(url, **options) as client:
            offset = await client.publish(channel, data)
    except WirehubError as exc:
        return _fail(exc)
    print(json.dumps({"offset": offset}), flush=True)
    return 0


async def subscribe(url: str, channel: str, *, count: int | None = None,
                    **options: Any) -> int:
    """Print messages as JSON lines until ``count`` (or forever); return the exit status."""
    if count is not None and count <= 0:
        return 0
    seen = 0
    try:
        async with connect(url, **options) as client:
            sub = await client.subscribe(channel)
            print(f"subscribed to {channel} at offset {sub.offset} (epoch {sub.epoch})",
                  file=sys.stderr, flush=True)
            async for message in sub:
                line = json.dumps(message.to_dict(), ensure_ascii=False, default=_bytes)
                print(line, flush=True)
                seen += 1
                if count is not None and seen >= count:
                    break
    except WirehubError as exc:
        return _fail(exc)
    return 0


def _bytes(value: Any) -> Any:
    """JSON for what MessagePack may carry and JSON cannot (bytes as text or hex)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
