"""``wirehub top URL --token T``: the admin view in a terminal, refreshed every second."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import aiohttp

__all__ = ["add_parser", "render", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("top", help="live nodes, channels and connections of a server")
    p.add_argument("url", help="the server, e.g. http://127.0.0.1:8765")
    p.add_argument("--token", default=os.environ.get("WIREHUB_ADMIN_TOKEN"),
                   help="the admin token (env WIREHUB_ADMIN_TOKEN)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.set_defaults(func=run)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [headers] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in cells]


def render(stats: dict[str, Any], limit: int = 15) -> str:
    """One screen of text from /admin/api/stats."""
    lines = [f"wirehub top - {stats['node']}", ""]
    lines += _table(["NODE", "UPTIME", "CONNS", "SUBS", "CHANNELS", "IN/S", "DELIV/S",
                     "BROKER"],
                    [[n["node"], n["uptime"], n["connections"], n["subscriptions"],
                      n["channels"], n["messages_in_per_s"], n["deliveries_per_s"],
                      "ok" if n["broker_healthy"] else "degraded"] for n in stats["nodes"]])
    lines += ["", *_table(["CHANNEL", "SUBSCRIBERS"],
                          [[c["channel"], c["subscribers"]]
                           for c in stats["channels"][:limit]])]
    lines += ["", *_table(["CLIENT", "REMOTE", "USER", "CHANNELS", "QUEUED", "CONFLATED"],
                          [[c["client"], c["remote"], c["user"], c["channels"],
                            c["queued_bytes"], c["conflated"]]
                           for c in stats["connections"][:limit]])]
    return "\n".join(lines) + "\n"


async def _fetch(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        if resp.status == 401:
            raise SystemExit("wirehub top: the server refused the admin token")
        if resp.status == 404:
            raise SystemExit("wirehub top: no admin view there (start the server with "
                             "--admin-token)")
        resp.raise_for_status()
        return await resp.json()


async def _main(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/").replace("ws://", "http://").replace("wss://", "https://")
    url = url.removesuffix("/ws") + "/admin/api/stats"
    headers = {"Authorization": f"Bearer {args.token or ''}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            try:
                screen = render(await _fetch(session, url))
            except aiohttp.ClientError as exc:
                print(f"wirehub top: {exc}", file=sys.stderr)
                return 1
            if args.once:
                sys.stdout.write(screen)
                return 0
            sys.stdout.write("\x1b[H\x1b[2J" + screen)
            sys.stdout.flush()
            await asyncio.sleep(args.interval)  # refresh period


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
