"""``wirehub bench``: wirehub side by side with Node ``ws`` and Python peers.

One command runs every server through the same scenarios with the same
load generator (C, ``loadgen/loadgen.c``, or Node.js as the cross-check),
pinned to a different core than the server, and
writes a table (ratios to Node ``ws``), a JSON file and a chart. See
docs/performance.md.

Modules: :mod:`.scenarios` (what is measured), :mod:`.servers` (what is
measured), :mod:`.runner` (processes), :mod:`.report` (ratios, targets,
table, chart), :mod:`.profile` (py-spy on fan-out), :mod:`.peers` (the
Python peers), ``loadgen/`` (the C load generator) and ``node/`` (the Node.js
load generator and the Node ``ws`` peer).
"""

from __future__ import annotations

from .harness import BenchOptions, run_bench
from .runner import BenchError

__all__ = ["BenchError", "BenchOptions", "run_bench"]
