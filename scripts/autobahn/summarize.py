#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite fuzzingclient report (index.json).

Usage: python3 scripts/autobahn/summarize.py REPORT_DIR/index.json [--strict]

index.json maps agent -> case id ("1.1.1") -> {"behavior", "behaviorClose",
"duration" (ms), "remoteCloseCode", "reportfile"}.

A case fails when "behavior" is FAILED, or "behaviorClose" is FAILED or one
of the other closing-handshake failures (WRONG CODE, UNCLEAN, FAILED BY
CLIENT); OK, NON-STRICT and INFORMATIONAL pass, and so does UNIMPLEMENTED (what
12.*/13.* report when the server does not negotiate permessage-deflate). With
--strict, NON-STRICT and UNIMPLEMENTED count as failures too.

Prints per-agent counts, one line per failing case (id, behaviors, close code,
report file) and, last, exactly ``N passed, N failed`` (totals over agents).
Exit code: 0 when nothing failed, 1 on any failure, 2 on a usage/report error.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

STRICT_ONLY = {"NON-STRICT", "UNIMPLEMENTED"}
CLOSE_FAILURES = {"FAILED", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"}


def case_key(cid: str) -> tuple[int, ...]:
    """Sort "9.10.2" after "9.2.1" (numeric, not lexical)."""
    return tuple(int(p) if p.isdigit() else 0 for p in cid.split("."))


def is_failure(case: dict, strict: bool) -> bool:
    """Return True when the case counts as failed under the chosen rule."""
    outcomes = {case.get("behavior"), case.get("behaviorClose")}
    if case.get("behavior") == "FAILED" or case.get("behaviorClose") in CLOSE_FAILURES:
        return True
    return strict and bool(outcomes & STRICT_ONLY)


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read report {path}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(report, dict) or not report:
        print(f"report {path} has no results", file=sys.stderr)
        return 2

    passed = failed = 0
    for agent, cases in report.items():
        beh = collections.Counter(c.get("behavior") for c in cases.values())
        behc = collections.Counter(c.get("behaviorClose") for c in cases.values())
        total_ms = sum(c.get("duration") or 0 for c in cases.values())
        print(f"agent {agent}: {len(cases)} cases, sum of case durations {total_ms / 1000:.1f} s")
        print(f"  behavior:      {dict(beh)}")
        print(f"  behaviorClose: {dict(behc)}")
        bad = [cid for cid in sorted(cases, key=case_key) if is_failure(cases[cid], strict)]
        for cid in bad:
            c = cases[cid]
            print(
                f"  FAILED {cid}: behavior={c.get('behavior')} "
                f"behaviorClose={c.get('behaviorClose')} "
                f"remoteCloseCode={c.get('remoteCloseCode')} "
                f"report={path.parent / str(c.get('reportfile'))}"
            )
        failed += len(bad)
        passed += len(cases) - len(bad)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
