"""Records, ratios to Node ``ws``, the targets, and the table, JSON and chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .scenarios import RECORDS
from .servers import BASELINE, SERVERS

__all__ = ["SATURATED", "annotate", "chart", "check_targets", "markdown_table", "text_table",
           "write_json"]

#: a load generator above this share of its core may be what limits the figure
SATURATED = 90.0
#: other programs using more than this share of a core made the run noisy
NOISY = 15.0

#: issue #6: what wirehub should reach, as (record, field, comparison, bound, what)
TARGETS: tuple[tuple[str, str, str, float, str], ...] = (
    ("fanout", "ratio", ">=", 1.5,
     "fan-out deliveries/s through the full protocol >= 1.5x Node ws"),
    ("latency100", "value", "<=", 10.0, "p99 latency at 100,000 deliveries/s <= 10 ms"),
    ("echo", "ratio", ">=", 1.2, "/echo round trips >= 1.2x Node ws"),
    ("rpc", "ratio", ">=", 1.0, "request/reply through /ws >= 1.0x Node ws echo"),
    ("idle", "value", "<=", 12.0, "idle memory <= 12 KiB per connection"),
)


def _baseline_record(name: str) -> str:
    """rpc has no counterpart on the peers: it is compared with their echo."""
    return "echo" if name == "rpc" else name


def annotate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ratio to Node ws, direction and the saturation/noise flags to each record."""
    base = {r["scenario"]: r for r in records if r.get("server") == BASELINE and "value" in r}
    for r in records:
        name = r["scenario"]
        unit, higher, desc = RECORDS.get(name, ("", True, ""))
        r.setdefault("unit", unit)
        r["higher_is_better"] = higher
        r["description"] = desc
        ref = base.get(_baseline_record(name))
        value = r.get("value")
        if ref is not None and _number(value) and _number(ref.get("value")) and ref["value"]:
            r["baseline"] = f"{BASELINE}:{ref['scenario']}"
            r["baseline_value"] = ref["value"]
            r["ratio_to_ws"] = value / ref["value"]
        else:
            r["ratio_to_ws"] = None
        flags = []
        if _number(r.get("lg_cpu")) and r["lg_cpu"] > SATURATED:
            flags.append("LOADGEN SATURATED")
        r["lg_saturated"] = bool(flags)
        if _number(r.get("other_cpu")) and r["other_cpu"] > NOISY:
            flags.append(f"noisy: other programs {r['other_cpu']:.0f}%")
        if r.get("failed"):
            flags.append(f"{r['failed']} connections failed")
        if r.get("errors"):
            flags.append(f"{r['errors']} errors")
        if name.startswith("latency") and _number(r.get("rate")):
            wanted = r["rate"] * r.get("subscribers", 0)
            if wanted and r.get("deliveries_per_s", 0) < 0.95 * wanted:
                flags.append(f"fell behind: {_si(r['deliveries_per_s'])}/{_si(wanted)} del/s")
        if r.get("skipped"):
            flags.append(f"skipped: {r['skipped']}")
        r["flags"] = flags
    return records


def check_targets(records: list[dict[str, Any]], full_scale: bool) -> list[dict[str, Any]]:
    """Issue #6's targets, each with the measured figure and whether it is met."""
    out = []
    for server in dict.fromkeys(r["server"] for r in records if r.get("server") in WIREHUBS):
        out += _targets_of(records, server, full_scale)
    return out


#: wirehub's rows: the default transport (lean) and transport = "aiohttp"
WIREHUBS = {"wirehub": "", "wirehub-aiohttp": " (transport aiohttp)"}


def _targets_of(records: list[dict[str, Any]], server: str,
                full_scale: bool) -> list[dict[str, Any]]:
    mine = {r["scenario"]: r for r in records if r.get("server") == server}
    out = []
    for name, fld, op, bound, what in TARGETS:
        what += WIREHUBS[server]
        r = mine.get(name)
        measured = None
        if r is not None:
            measured = r.get("ratio_to_ws") if fld == "ratio" else r.get("value")
        met = None
        if _number(measured):
            met = measured >= bound if op == ">=" else measured <= bound
        if r is not None and name == "latency100" and "fell behind" in " ".join(r["flags"]):
            met = False
        out.append({"target": what, "server": server, "scenario": name,
                    "field": "ratio_to_ws" if fld == "ratio" else r and r.get("unit"),
                    "bound": bound, "comparison": op,
                    "measured": measured, "met": met, "full_scale": full_scale})
    return out


# -- formatting ----------------------------------------------------------------------------
def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _si(x: float) -> str:
    if not _number(x):
        return "-"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}" if abs(x) / div < 100 else f"{x / div:.0f}{suffix}"
    return f"{x:.3g}"


def _ms(x: Any) -> str:
    if not _number(x):
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def figure(r: dict[str, Any]) -> str:
    if r.get("skipped") or not _number(r.get("value")):
        return "-"
    name = r["scenario"]
    if name.startswith("latency"):
        return (f"p50 {_ms(r.get('p50_ms'))} / p99 {_ms(r.get('p99_ms'))} / "
                f"p999 {_ms(r.get('p999_ms'))} ms at {_si(r.get('deliveries_per_s', 0))} del/s")
    if name == "idle":
        return f"{r['value']:.1f} KiB/conn ({r.get('still_open', 0):,} conns)"
    if name == "channels":
        per_sub = r.get("kib_per_subscription")
        extra = f" ({per_sub:.2f} KiB/sub)" if _number(per_sub) else ""
        return f"{_si(r['value'])} del/s{extra}"
    unit = {"deliveries/s": "del/s"}.get(r.get("unit", ""), r.get("unit", ""))
    return f"{_si(r['value'])} {unit}"


def _ratio(r: dict[str, Any]) -> str:
    x = r.get("ratio_to_ws")
    if not _number(x):
        return "-"
    return f"{x:.2f}x" + ("" if r["scenario"] != "rpc" else " (of ws echo)")


def _pct(x: Any) -> str:
    return f"{x:.0f}%" if _number(x) else "-"


def _rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        label = SERVERS[r["server"]].label if r.get("server") in SERVERS else str(r.get("server"))
        rows.append([r["scenario"], label, figure(r), _ratio(r), _pct(r.get("server_cpu")),
                     _pct(r.get("lg_cpu")), _pct(r.get("other_cpu")), "; ".join(r["flags"])])
    return rows


HEADER = ["scenario", "server", "figure", "vs Node ws", "server CPU", "loadgen CPU", "other CPU",
          "notes"]


def _loadgen_line(loadgen: str | None) -> list[str]:
    return [f"load generator: {loadgen}"] if loadgen else []


def text_table(records: list[dict[str, Any]], targets: list[dict[str, Any]],
               loadgen: str | None = None) -> str:
    """The terminal table; ``loadgen`` (which load generator ran) heads it when given."""
    rows = _rows(records)
    widths = [max(len(str(c)) for c in col) for col in zip(HEADER, *rows, strict=False)]
    lines = [*_loadgen_line(loadgen),
             "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    last = None
    for row in rows:
        if last is not None and row[0] != last:
            lines.append("")
        last = row[0]
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines += ["", "CPU: % of one core over the measured window (utime+stime from /proc/PID/stat);"
              f" a load generator above {SATURATED:.0f}% is flagged as saturated.", "",
              "targets (issue #6):"]
    lines += [f"  [{_mark(t['met'])}] {t['target']}: measured {_fmt_target(t)}" for t in targets]
    return "\n".join(lines) + "\n"


def markdown_table(records: list[dict[str, Any]], targets: list[dict[str, Any]],
                   loadgen: str | None = None) -> str:
    lines = [f"Load generator: {loadgen}.", ""] if loadgen else []
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in _rows(records)]
    lines += ["", "| target (issue #6) | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {_fmt_target(t)} | {_mark(t['met'])} |" for t in targets]
    return "\n".join(lines) + "\n"


def _mark(met: bool | None) -> str:
    return "yes" if met else "no" if met is False else "n/a"


def _fmt_target(t: dict[str, Any]) -> str:
    m = t["measured"]
    if not _number(m):
        return "not measured"
    text = f"{m:.2f}x" if t["field"] == "ratio_to_ws" else f"{m:.2f} {t['field']}"
    return text if t["full_scale"] else text + " (reduced scale: not a verdict)"


def write_json(path: Path, meta: dict[str, Any], records: list[dict[str, Any]],
               targets: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "records": records, "targets": targets}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def chart(path: Path, records: list[dict[str, Any]], title: str) -> Path | None:
    """One bar chart per record type, servers side by side; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [n for n in RECORDS if any(r["scenario"] == n and _number(r.get("value"))
                                       for r in records)]
    if not names:
        return None
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        rs = [r for r in records if r["scenario"] == name and _number(r.get("value"))]
        labels = [SERVERS[r["server"]].label if r["server"] in SERVERS else r["server"]
                  for r in rs]
        if name == "rpc":  # the peers have no protocol: show what rpc is compared with
            ref = [r for r in records if r["scenario"] == "echo" and r["server"] == BASELINE
                   and _number(r.get("value"))]
            rs, labels = rs + ref, labels + ["Node ws (echo)"] * len(ref)
        values = [r["value"] for r in rs]
        colors = ["#d9480f" if r["server"] == "wirehub" else "#f08c00"
                  if r["server"] == "wirehub-aiohttp" else "#868e96" if r["server"] != BASELINE
                  else "#1c7ed6" for r in rs]
        bars = ax.bar(range(len(rs)), values, color=colors)
        for bar, r in zip(bars, rs, strict=True):
            if r.get("lg_saturated"):
                bar.set_hatch("//")
            ratio = r.get("ratio_to_ws")
            text = _si(r["value"]) + (f"\n{ratio:.2f}x" if _number(ratio) else "")
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        unit, higher, _desc = RECORDS[name]
        ax.set_title(f"{name}: {unit} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_xticks(range(len(rs)), labels, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.25)
    fig.suptitle(title + "   (blue: Node ws, orange: wirehub, hatched: load generator saturated)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
