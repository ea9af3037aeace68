"""The ``wirehub`` command: serve, connect (with --trace), publish, subscribe."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# each module defines add_parser(subparsers); its parser sets func=run(args) -> int
_COMMANDS = ("serve", "config", "connect", "pubsub", "top", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirehub", description="wirehub: a real-time WebSocket hub and its tools."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
