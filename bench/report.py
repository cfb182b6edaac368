"""Summaries of benchmark measurements: statistics per config, ratios, and the markdown table."""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional

from bench.workloads import OFFICIAL_TAG, Config, official_label, parse_config


def summarize(label: str, runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One config over all rounds: median s/iter, min/max over every timed iteration, images/s, peak memory.

    The median is the median of the rounds' medians: a round that a burst of load from other processes slowed
    down then moves it no more than a single slow iteration would (with three rounds or more).
    """
    times = [t for r in runs for t in r["s_per_iter"]]
    waits = [t for r in runs for t in r.get("data_wait_s", [])]
    config = parse_config(label.split(" @")[0])  # "<config> @<checkout>": another checkout's code
    per_iter = runs[0]["images_per_iter"] if runs else 1
    round_medians = [statistics.median(r["s_per_iter"]) for r in runs if r["s_per_iter"]]
    median = statistics.median(round_medians) if round_medians else float("nan")
    cuda = [r["peak_cuda_mb"] for r in runs if r.get("peak_cuda_mb") is not None]
    return {
        "label": label, "workload": config.workload, "kind": config.spec.kind, "rounds": len(runs),
        "n": len(times), "median_s": median, "round_medians_s": round_medians,
        "min_s": min(times, default=float("nan")),
        "max_s": max(times, default=float("nan")), "images_per_s": per_iter / median if times else float("nan"),
        "images_per_iter": per_iter, "median_data_wait_s": statistics.median(waits) if waits else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs) if runs else None,
        "peak_cuda_mb": max(cuda) if cuda else None, "final_losses": runs[-1].get("final_losses") if runs else None,
    }


def add_ratios(rows: List[Dict[str, Any]]) -> None:
    """Speed-ups against the workload's first config (its baseline) and against the official figures.

    ``speedup_vs_base`` / ``speedup_vs_official`` compare images per second (> 1: faster), so a larger batch
    counts by throughput; ``rss_vs_official`` is our peak RSS over the official one (< 1: less memory); the
    ``*_official_run`` ratios compare with the official code's row of this run (``--official``), where there is one.
    """
    base: Dict[str, Dict[str, Any]] = {}
    by_label = {row["label"]: row for row in rows}
    for row in rows:
        # the official code measured in this run (--official): images/s and peak RSS against its row
        same_run = None if row["label"].endswith(OFFICIAL_TAG) else by_label.get(
            official_label(parse_config(row["label"].split(" @")[0])) or "")
        row["speedup_vs_official_run"] = row["images_per_s"] / same_run["images_per_s"] if same_run else None
        row["rss_vs_official_run"] = (row["peak_rss_mb"] / same_run["peak_rss_mb"]
                                      if same_run and row["peak_rss_mb"] and same_run["peak_rss_mb"] else None)
        if row["label"].endswith(OFFICIAL_TAG):
            row.update(baseline=None, speedup_vs_base=None, official_s=None, speedup_vs_official=None,
                       rss_vs_official=None)
            continue
        base.setdefault(row["workload"], row)
        b = base[row["workload"]]
        row["baseline"] = b["label"]
        row["speedup_vs_base"] = row["images_per_s"] / b["images_per_s"]
        spec = Config(row["workload"]).spec
        row["official_s"] = spec.official_s
        row["speedup_vs_official"] = (row["images_per_s"] * spec.official_s) if spec.official_s else None
        row["rss_vs_official"] = (row["peak_rss_mb"] / 1024.0 / spec.official_rss_gb
                                  if spec.official_rss_gb and row["peak_rss_mb"] else None)


def _fmt(value: Optional[float], spec: str, suffix: str = "") -> str:
    """Format a number, or an em dash when it is missing."""
    return "—" if value is None else format(value, spec) + suffix


def table(rows: List[Dict[str, Any]], device: str) -> str:
    """The results as a markdown table (official figures are CPU figures: ratios only on the CPU)."""
    memory = "peak GPU mem" if device == "cuda" else "peak RSS"
    head = (f"| config | s/iter median (min–max) | images/s | vs baseline | vs official run | RSS vs official run "
            f"| official s/iter | vs official | {memory} | RSS vs official | data wait |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        on_cpu = device != "cuda"
        mem = (_fmt(r["peak_cuda_mb"] / 1024.0, ".2f", " GB") if device == "cuda" and r["peak_cuda_mb"]
               else _fmt(r["peak_rss_mb"] / 1024.0 if r["peak_rss_mb"] else None, ".2f", " GB"))
        lines.append("| {} | {} ({}–{}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["label"], _fmt(r["median_s"], ".3f"), _fmt(r["min_s"], ".3f"), _fmt(r["max_s"], ".3f"),
            _fmt(r["images_per_s"], ".2f"), _fmt(r["speedup_vs_base"], ".2f", "×"),
            _fmt(r.get("speedup_vs_official_run"), ".2f", "×"), _fmt(r.get("rss_vs_official_run"), ".2f", "×"),
            _fmt(r["official_s"], ".2f") if on_cpu else "—",
            _fmt(r["speedup_vs_official"], ".2f", "×") if on_cpu else "—", mem,
            _fmt(r["rss_vs_official"], ".2f", "×") if on_cpu else "—",
            _fmt(r["median_data_wait_s"], ".3f", " s")))
    return "\n".join(lines)
