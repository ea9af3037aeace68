"""``wirehub config [--config FILE] [flags]``: print the effective settings, secrets masked."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import describe, reference
from ..exceptions import ConfigError
from .serve import add_settings, settings_from

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("config", help="print the effective configuration (secrets masked)",
                       description="Defaults < --config file < WIREHUB_* environment "
                       "variables < flags. Exits 2 naming the key of an invalid setting.")
    p.add_argument("--reference", action="store_true",
                   help="print the table of every setting (Markdown) instead")
    add_settings(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(reference())
        return 0
    try:
        config = settings_from(args)
    except ConfigError as exc:
        print(f"wirehub: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(describe(config))
    return 0
