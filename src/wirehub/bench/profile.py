"""``wirehub bench --profile``: the fan-out scenario on wirehub under py-spy.

py-spy samples the running server (``--pid``, ``--nonblocking``: the server is
never paused) while the load generator runs fan-out. Two samplers run side by
side: one writes the flame graph (SVG), the other the collapsed stacks, from
which the hot spots are counted: *self* (the function was on top of the stack)
and *total* (it was anywhere on the stack), in % of the samples.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from .runner import BenchError, Pinning, choose_loadgen, raise_fd_limit, run_loadgen, running
from .scenarios import plan
from .servers import SERVERS

__all__ = ["hot_spots", "profile_fanout"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _key(frame: str) -> str:
    """``f (/venv/.../site-packages/aiohttp/x.py:12)`` -> ``f (aiohttp/x.py)``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def hot_spots(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Self and total shares of each function in py-spy's collapsed (raw) stacks."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_key(f) for f in stack.split(";") if f]
        # py-spy's first frame names the process/thread: skip frames without a file
        frames = [f for f in frames if "(" in f] or frames
        samples += n
        if frames:
            self_c[frames[-1]] += n
        for f in set(frames):
            total_c[f] += n

    def pct(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "percent": round(100 * n / samples, 1)}
                for f, n in c.most_common(top)] if samples else []

    return {"samples": samples, "self": pct(self_c), "total": pct(total_c)}


def _format(spots: dict[str, Any]) -> str:
    lines = [f"{spots['samples']} samples (py-spy, 100 Hz, idle excluded)", "",
             "self (on top of the stack):"]
    lines += [f"  {s['percent']:5.1f}%  {s['function']}" for s in spots["self"]]
    lines += ["", "total (anywhere on the stack):"]
    lines += [f"  {s['percent']:5.1f}%  {s['function']}" for s in spots["total"]]
    return "\n".join(lines) + "\n"


def profile_fanout(out_dir: Path, *, quick: bool = False, pin: bool = True,
                   overrides: dict[str, dict[str, Any]] | None = None,
                   out: TextIO = sys.stdout, loadgen_kind: str | None = None) -> dict[str, Any]:
    """Profile wirehub under fan-out; write fanout.svg, fanout.collapsed, fanout-top.txt."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise BenchError("py-spy is not installed (pip install py-spy)")
    loadgen, note = choose_loadgen(loadgen_kind)
    if note:
        print(note, file=out)
    pinning = Pinning.choose(pin)
    raise_fd_limit()
    scenario = plan("fanout", quick=quick, overrides=overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    svg, raw = out_dir / "fanout.svg", out_dir / "fanout.collapsed"
    log = out_dir / "logs" / "profile.log"
    with running(SERVERS["wirehub"], pinning, log) as server:
        base = [*pinning.prefix(pinning.server_cpu), pyspy, "record", "--pid", str(server.pid),
                "--rate", "100", "--nonblocking"]
        samplers = [
            subprocess.Popen([*base, "--format", "flamegraph", "-o", str(svg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            subprocess.Popen([*base, "--format", "raw", "-o", str(raw)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        ]
        try:
            records = run_loadgen(loadgen, server, scenario, pinning, log)
        finally:
            for s in samplers:  # py-spy writes its file when interrupted
                if s.poll() is None:
                    s.send_signal(signal.SIGINT)
            errors = []
            for s in samplers:
                try:
                    _, err = s.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    s.kill()
                    _, err = s.communicate()
                if s.returncode not in (0, -signal.SIGINT, 130) and err:
                    errors.append(err.decode(errors="replace")[-500:])
    if not raw.exists():
        raise BenchError("py-spy wrote no profile: " + " ".join(errors))
    spots = hot_spots(raw.read_text())
    text = _format(spots)
    (out_dir / "fanout-top.txt").write_text(text)
    rec = records[0] if records else {}
    print(f"fan-out under py-spy: {rec.get('value', 0):,.0f} deliveries/s "
          f"(server CPU {rec.get('server_cpu')}%, loadgen CPU {rec.get('lg_cpu')}%)", file=out)
    print(text, file=out)
    print(f"wrote {svg}, {raw}, {out_dir / 'fanout-top.txt'}", file=out)
    return {"record": rec, "hot_spots": spots, "svg": str(svg)}
