"""``wirehub connect URL``: an interactive WebSocket session, like wscat.

Every line read from stdin is sent as one text message; every message
received is printed with a timestamp (``<`` in, ``>`` out, ``*`` for what
happened to the connection). End of input (Ctrl-D) closes cleanly with 1000
(RFC 6455 §7.4.1); when the server closes first, its code and reason are
printed. It speaks plain WebSocket, so any URL works: ``/echo``, ``/ws``, or
another server entirely. ``--trace`` shows the handshake and every frame
instead (see :mod:`wirehub.cli.trace`).

Exit status: 0 after a normal closure (1000), 1 for any other close code or
when the connection could not be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TextIO

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

__all__ = ["StdinLines", "add_parser", "parse_header", "run", "run_main", "stamp"]


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``('Name', 'value')`` (argparse type)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"not a header: {text!r} (expected 'Name: value')")
    return name.strip(), value.strip()


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "connect",
        help="interactive WebSocket session (stdin lines out, messages in), like wscat",
        description="Send each stdin line as a text message and print what arrives. "
        "Ctrl-D closes with 1000.",
    )
    p.add_argument("url", help="any WebSocket URL, e.g. ws://127.0.0.1:8765/echo")
    p.add_argument("-s", "--subprotocol", action="append", default=[], metavar="P",
                   help="offer subprotocol P (repeat to offer several), e.g. wirehub.v1.json")
    p.add_argument("-H", "--header", action="append", default=[], type=parse_header,
                   metavar="'NAME: VALUE'", help="add an HTTP header to the upgrade request")
    p.add_argument("--trace", action="store_true",
                   help="show the HTTP upgrade and every frame (opcode, FIN, RSV, length, "
                   "payload, close code) instead of messages")
    p.add_argument("--fragment", type=int, default=0, metavar="BYTES",
                   help="with --trace: send each line in frames of at most BYTES "
                   "(text frame, then continuation frames)")
    p.add_argument("--close-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long to wait for the closing handshake (default: %(default)s)")
    p.set_defaults(func=run)


def stamp() -> str:
    """The local time as HH:MM:SS.mmm."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


def ws_url(url: str) -> str:
    """Accept ``http(s)://`` for ``ws(s)://``."""
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.lower().startswith(http):
            return ws + url[len(http):]
    return url


class StdinLines:
    """Lines of a text stream, read by a daemon thread and awaited on the loop.

    A thread works for terminals, pipes and regular files alike, and a daemon
    thread blocked in ``readline`` never holds up the exit.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdin
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, name="wirehub-stdin", daemon=True).start()

    def _pump(self) -> None:
        try:
            for line in self._stream:
                self._put(line.removesuffix("\n").removesuffix("\r"))
        except (OSError, ValueError):
            pass
        self._put(None)

    def _put(self, line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)

    async def get(self) -> str | None:
        """The next line without its newline, or ``None`` at end of input."""
        return await self._queue.get()


def _show(direction: str, message: str | bytes) -> None:
    if isinstance(message, str):
        text = message
    else:
        preview = bytes(message[:32]).hex(" ")
        text = f"[binary, {len(message)} bytes] {preview}{' ...' if len(message) > 32 else ''}"
    print(f"{stamp()} {direction} {text}", flush=True)


def _note(text: str) -> None:
    print(f"{stamp()} * {text}", flush=True)


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """Run a CLI coroutine; a reader that went away (``| head``) ends it quietly."""
    try:
        return asyncio.run(main)
    except BrokenPipeError:
        # Python docs, "Note on SIGPIPE": point stdout at devnull so that the
        # final flush at exit does not raise again; 141 = 128 + SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def run(args: argparse.Namespace) -> int:
    if args.trace:
        from .trace import trace

        return run_main(trace(ws_url(args.url), subprotocols=args.subprotocol,
                              headers=args.header, fragment=args.fragment,
                              close_timeout=args.close_timeout))
    return run_main(interactive(ws_url(args.url), subprotocols=args.subprotocol,
                                headers=args.header, close_timeout=args.close_timeout))


async def interactive(url: str, *, subprotocols: list[str], headers: list[tuple[str, str]],
                      close_timeout: float = 5.0) -> int:
    """Run one session; return the exit status."""
    try:
        ws = await ws_connect(url, subprotocols=subprotocols or None,  # type: ignore[arg-type]
                              additional_headers=headers, close_timeout=close_timeout,
                              max_size=None)
    except websockets.InvalidStatus as exc:
        body = bytes(exc.response.body).decode("utf-8", "replace").strip()
        print(f"wirehub connect: upgrade refused with HTTP {exc.response.status_code} "
              f"{exc.response.reason_phrase}" + (f": {body}" if body else ""), file=sys.stderr)
        return 1
    except (websockets.WebSocketException, OSError, TimeoutError) as exc:
        print(f"wirehub connect: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    extra = f" (subprotocol {ws.subprotocol})" if ws.subprotocol else ""
    _note(f"connected to {url}{extra}; Ctrl-D to close")
    receiver = asyncio.ensure_future(_receive(ws))
    sender = asyncio.ensure_future(_send_lines(ws))
    await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    if sender.done():  # end of input: we close (websockets waits for the server's reply)
        await ws.close(1000)
    else:
        sender.cancel()
    await receiver
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    by = "server" if ws.protocol.close_rcvd_then_sent else "us"
    if rcvd is None:
        _note(f"connection lost without a close frame ({ws.close_code})")
        return 1
    _note(f"closed by {by}: code {rcvd.code}" + (f" reason {rcvd.reason!r}" if rcvd.reason else "")
          + (f" (we sent {sent.code})" if sent is not None and sent.code != rcvd.code else ""))
    return 0 if rcvd.code == 1000 else 1


async def _send_lines(ws: ClientConnection) -> None:
    lines = StdinLines()
    while (line := await lines.get()) is not None:
        try:
            await ws.send(line)
        except websockets.ConnectionClosed:
            return
        _show(">", line)


async def _receive(ws: ClientConnection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in ws:
            _show("<", message)
