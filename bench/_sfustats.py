"""The figures of ``bench/sfu.py`` from its recorded rounds (plain dicts, as kept in
``--json-out``), and its table. No I/O and no media imports: tests run it on made-up rounds.

A round (one fresh server process, one measuring window) carries at least ``server``
("janus" or "yunkan"), ``n`` (pairs asked for), ``phase`` ("quiet", or "contention" while
a CPU-bound process runs on every core), ``valid`` and, when it got as far as measuring,
``cpu_per_stream``, ``fps_min``, ``fps_median``, ``udp_rcvbuf_errors``, ``remb_per_s``
(per publisher), ``remb_min_bps``, ``remb_median_bps``, ``connections_lost``, ``refused``,
``slow_joins``, ``load_average``; a round that failed before measuring has ``error``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

SERVERS = ("janus", "yunkan")


def median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def ratio(num: float | None, den: float | None, digits: int = 2) -> float | None:
    return round(num / den, digits) if num is not None and den else None


def _figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures over its measured rounds (medians of the rounds' figures;
    minimum of the per-round lowest fps and REMB)."""
    fps_mins = [r["fps_min"] for r in rounds if "fps_min" in r]
    remb_mins = [r["remb_min_bps"] for r in rounds if r.get("remb_min_bps") is not None]
    return {
        "cpu_per_stream": median(r.get("cpu_per_stream") for r in rounds),
        "fps_min": min(fps_mins) if fps_mins else None,
        "fps_median": median(r.get("fps_median") for r in rounds),
        "udp_drops": median(r.get("udp_rcvbuf_errors") for r in rounds),
        "remb_per_s": median(r.get("remb_per_s") for r in rounds),
        "remb_min_bps": min(remb_mins) if remb_mins else None,
        "remb_median_bps": median(r.get("remb_median_bps") for r in rounds),
    }


def quiet_summary(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per N: both servers' figures over their valid quiet rounds and Yunkan / Janus.

    ``ratio`` divides the medians; ``pairwise_ratios`` divides each Yunkan round by the
    Janus round of the same N just before it (rounds alternate J Y J Y …), so a slow
    spell of the machine that hits one pair of rounds shows as one outlier."""
    out: dict[str, dict[str, Any]] = {}
    for n in sorted({r["n"] for r in rounds if r.get("phase") == "quiet"}):
        here = [r for r in rounds if r["n"] == n and r.get("phase") == "quiet"]
        row: dict[str, Any] = {}
        valid: dict[str, list[dict[str, Any]]] = {}
        for server in SERVERS:
            tried = [r for r in here if r["server"] == server]
            valid[server] = [r for r in tried if r.get("valid")]
            for key, value in _figures(valid[server]).items():
                row[f"{server}_{key}"] = value
            row[f"{server}_rounds"] = f"{len(valid[server])}/{len(tried)}"
            # Every attempt, valid or not: a server that collapses shows it here.
            for key in ("fps_median", "udp_rcvbuf_errors", "connections_lost", "remb_per_s"):
                row[f"{server}_{key}_each"] = [r.get(key) for r in tried]
        row["ratio"] = ratio(row["yunkan_cpu_per_stream"], row["janus_cpu_per_stream"])
        pairs = []
        last_janus: dict[str, Any] | None = None
        for r in here:
            if not r.get("valid"):
                continue
            if r["server"] == "janus":
                last_janus = r
            elif last_janus is not None:
                pairs.append(ratio(r["cpu_per_stream"], last_janus["cpu_per_stream"]))
                last_janus = None
        row["pairwise_ratios"] = pairs
        loads = [x for r in here for x in r.get("load_average", [])]
        row["load_average"] = [min(loads), max(loads)] if loads else None
        out[str(n)] = row
    return out


def contention_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Every contention round counts, valid or not (collapse is the figure). The REMB
    ratio compares with the quiet rounds of the same N in the same run."""
    out: dict[str, Any] = {}
    for server in SERVERS:
        tried = [r for r in rounds if r["server"] == server and r.get("phase") == "contention"]
        if not tried:
            continue
        quiet = [
            r
            for r in rounds
            if r["server"] == server
            and r.get("phase") == "quiet"
            and r["n"] in {t["n"] for t in tried}
            and "remb_median_bps" in r
        ]
        measured = [r for r in tried if "fps_min" in r]
        figures = _figures(measured)
        quiet_remb = median(r.get("remb_median_bps") for r in quiet)
        quiet_remb_min = median(r.get("remb_min_bps") for r in quiet)
        out[server] = {
            "rounds": len(tried),
            "rounds_failed": [r.get("error", "")[:120] for r in tried if "fps_min" not in r],
            "connections_lost": sum(r.get("connections_lost", 0) for r in tried),
            "connections_lost_each": [r.get("connections_lost") for r in tried],
            "fps_min": figures["fps_min"],
            "fps_median": figures["fps_median"],
            "fps_min_each": [r.get("fps_min") for r in tried],
            "fps_median_each": [r.get("fps_median") for r in tried],
            "joins_over_10s": sum(r.get("slow_joins", 0) for r in tried),
            "udp_drops_each": [r.get("udp_rcvbuf_errors") for r in tried],
            "refused_at_admission": sum(r.get("refused", 0) for r in tried),
            "cpu_per_stream": figures["cpu_per_stream"],
            "remb_per_s": figures["remb_per_s"],
            "remb_median_bps": figures["remb_median_bps"],
            "remb_min_bps": figures["remb_min_bps"],
            "remb_median_bps_quiet": quiet_remb,
            "remb_ratio_vs_quiet": ratio(figures["remb_median_bps"], quiet_remb),
            "remb_min_ratio_vs_quiet": ratio(figures["remb_min_bps"], quiet_remb_min),
        }
    loads = [x for r in rounds if r.get("phase") == "contention" for x in r.get("load_average", [])]
    out["load_average"] = [min(loads), max(loads)] if loads else None
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _mbit(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:.2f}M"


def table(quiet: dict[str, dict[str, Any]], contention: dict[str, Any]) -> str:
    lines = []
    if quiet:
        lines.append(
            f"{'N':>3}  {'server':7} {'rounds':>6} {'CPU/stream':>10} {'fps min':>7} "
            f"{'fps med':>7} {'drops':>6} {'REMB/s':>6} {'REMB min':>8}  load avg"
        )
        for n, row in quiet.items():
            for s in SERVERS:
                lines.append(
                    f"{n:>3}  {s:7} {row[f'{s}_rounds']:>6} {_pct(row[f'{s}_cpu_per_stream']):>10} "
                    f"{_num(row[f'{s}_fps_min']):>7} {_num(row[f'{s}_fps_median']):>7} "
                    f"{_num(row[f'{s}_udp_drops'], '.0f'):>6} {_num(row[f'{s}_remb_per_s']):>6} "
                    f"{_mbit(row[f'{s}_remb_min_bps']):>8}  {row['load_average']}"
                )
            lines.append(
                f"{n:>3}  Yunkan / Janus CPU per stream: {_num(row['ratio'], '.2f')}x "
                f"(adjacent rounds {row['pairwise_ratios']})"
            )
            for s in SERVERS:
                if row[f"{s}_rounds"].split("/")[0] != row[f"{s}_rounds"].split("/")[1]:
                    lines.append(
                        f"{n:>3}  {s} every attempt: fps median {row[f'{s}_fps_median_each']}, "
                        f"kernel drops {row[f'{s}_udp_rcvbuf_errors_each']}, connections lost "
                        f"{row[f'{s}_connections_lost_each']}, REMB/s per publisher "
                        f"{row[f'{s}_remb_per_s_each']}"
                    )
    for s in SERVERS:
        c = contention.get(s)
        if not c:
            continue
        lines.append(
            f"contention {s:7}: rounds {c['rounds']}, connections lost {c['connections_lost']} "
            f"{c['connections_lost_each']}, fps min {_num(c['fps_min'])} / median "
            f"{_num(c['fps_median'])} (each {c['fps_min_each']} / {c['fps_median_each']}), "
            f"joins > 10 s {c['joins_over_10s']}, kernel drops {c['udp_drops_each']}, "
            f"refused {c['refused_at_admission']}, REMB median {_mbit(c['remb_median_bps'])} "
            f"(quiet {_mbit(c['remb_median_bps_quiet'])}, ratio "
            f"{_num(c['remb_ratio_vs_quiet'], '.2f')}), REMB min {_mbit(c['remb_min_bps'])}, "
            f"{_num(c['remb_per_s'])}/s per publisher"
        )
    if contention.get("load_average"):
        lines.append(f"contention load average {contention['load_average']}")
    return "\n".join(lines)
