"""Turning a run's JSON into the Markdown table, the target check and the PNG chart.

Every ratio is kafkito/peer from the same run. Which way is better depends on the
figure (MB/s: higher; ms, CPU seconds, MB of RSS: lower), so the chart plots the
advantage, kafkito/peer for "higher is better" figures and peer/kafkito for the others:
a bar past 1 means kafkito is ahead. Targets are the ones issue 6 sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOME = "kafkito"


@dataclass(frozen=True)
class Target:
    case: str
    metric: str
    kind: str             # "ratio_min" (kafkito/peer >= value), "max" (kafkito <= value), "flat"
    value: float
    peer: str | None = None
    text: str = ""


TARGETS = [
    Target("produce/1KB/acks=1/none", "mb_s", "ratio_min", 1.0, "tansu", ">= 1.0x tansu"),
    Target("produce/10KB/acks=1/none", "mb_s", "ratio_min", 1.0, "tansu", ">= 1.0x tansu"),
    Target("produce/1KB/acks=all/none", "mb_s", "ratio_min", 0.7, "tansu", ">= 0.7x tansu"),
    Target("produce/10KB/acks=all/none", "mb_s", "ratio_min", 0.7, "tansu", ">= 0.7x tansu"),
    Target("consume/1GB", "mb_s", "ratio_min", 1.0, "tansu", ">= 1.0x tansu"),
    Target("e2e/1000msg/s", "p50_ms", "max", 5.0, text="< 5 ms"),
    Target("e2e/1000msg/s", "p99_ms", "max", 20.0, text="< 20 ms"),
    Target("group/join", "join_s", "max", 1.0, text="< 1 s"),
    Target("latency/100B/acks=1", "p99_ms", "max", 2.0, text="< 2 ms"),
    Target("startup", "startup_serve_ms", "max", 300.0, text="< 300 ms"),
    Target("startup", "startup_embedded_ms", "max", 50.0, text="< 50 ms"),
    Target("startup", "idle_rss_mb", "max", 60.0, text="< 60 MB"),
    # "Flat": within 25 % (+5 MB / +50 ms of noise) of the empty broker's figure.
    Target("consume/1GB", "rss_after_restart_mb", "flat", 1.25, text="flat vs empty"),
    Target("consume/1GB", "restart_s", "flat", 1.25, text="flat vs empty"),
    Target("retained/10GB", "rss_after_restart_mb", "flat", 1.25, text="flat vs empty"),
    Target("retained/10GB", "restart_s", "flat", 1.25, text="flat vs empty"),
]

FLAT_BASE = {"rss_after_restart_mb": ("startup", "idle_rss_mb", 1.0, 5.0),
             "restart_s": ("startup", "startup_serve_ms", 1e-3, 0.05)}


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if unit in ("ms", "s") and v < 10:
        return f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def cases_by_id(result: dict) -> dict:
    return {c["id"]: c for c in result["cases"]}


def value(result: dict, case: str, metric: str, broker: str = HOME):
    c = cases_by_id(result).get(case)
    if c is None:
        return None
    return c.get("median", {}).get(broker, {}).get(metric)


def evaluate(result: dict) -> list[dict]:
    rows = []
    brokers = result["brokers"]
    for t in TARGETS:
        c = cases_by_id(result).get(t.case)
        if c is None:
            continue
        k = value(result, t.case, t.metric)
        status, shown = None, None
        if t.kind == "ratio_min":
            p = value(result, t.case, t.metric, t.peer)
            if k is not None and p:
                shown = k / p
                status = shown >= t.value
            else:
                shown = c.get("errors", {}).get(HOME) or c.get("errors", {}).get(t.peer) or "not measured"
        elif t.kind == "max":
            shown = k if k is not None else (c.get("errors", {}).get(HOME) or "not measured")
            status = (k < t.value) if k is not None else False
        elif t.kind == "flat":
            base_case, base_metric, scale, slack = FLAT_BASE[t.metric]
            base = value(result, base_case, base_metric)
            if k is not None and base is not None:
                base *= scale
                shown = k / base if base else None
                status = k <= base * t.value + slack
            else:
                shown = "not measured"
        if status is None and isinstance(shown, str) and t.kind == "ratio_min":
            status = False if c.get("errors", {}).get(HOME) else None
        rows.append({"case": t.case, "metric": t.metric, "target": t.text, "value": shown, "met": status,
                     "kind": t.kind})
    # Against the pure-Python peer: at least 3x on every throughput figure.
    if brokers.get("nafka", {}).get("available"):
        for c in result["cases"]:
            if c["id"].startswith("produce/") and not c["id"].endswith("/none"):
                continue  # nafka gets no compressed batches (see its row): no like-for-like figure
            k = value(result, c["id"], "mb_s")
            n = value(result, c["id"], "mb_s", "nafka")
            if k is not None and n:
                rows.append({"case": c["id"], "metric": "mb_s", "target": ">= 3x nafka", "value": k / n,
                             "met": k / n >= 3.0, "kind": "ratio_min"})
    return rows


def ratio_rows(result: dict) -> list[dict]:
    """One row per (case, figure): each broker's median and kafkito/peer."""
    peers = [b for b, info in result["brokers"].items() if b != HOME and info.get("available")]
    rows = []
    for c in result["cases"]:
        for m in c["metrics"]:
            vals = {b: c.get("median", {}).get(b, {}).get(m["key"]) for b in [HOME] + peers}
            if all(v is None for v in vals.values()):
                continue
            row = {"case": c["id"], "group": c["group"], "metric": m["key"], "label": m["label"], "unit": m["unit"],
                   "better": m["better"], "values": vals, "ratios": {}}
            for p in peers:
                k, v = vals[HOME], vals[p]
                if k is not None and v and m["better"] != "info":
                    row["ratios"][p] = k / v
            rows.append(row)
    return rows


def advantage(row: dict, peer: str) -> float | None:
    r = row["ratios"].get(peer)
    if r is None or r <= 0:
        return None
    return r if row["better"] == "higher" else 1 / r


SUMMARY = {"mb_s", "p50_ms", "p99_ms", "join_s", "startup_serve_ms", "startup_embedded_ms", "idle_rss_mb",
           "restart_s", "rss_after_restart_mb"}


def _table(head: list[str], rows: list[dict], peers: list[str]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        how = "for information" if row["better"] == "info" else f"{row['better']} better"
        cells = [row["case"], f"{row['label']} ({row['unit']}, {how})", _fmt(row["values"][HOME], row["unit"])]
        for p in peers:
            r = row["ratios"].get(p)
            cells += [_fmt(row["values"][p], row["unit"]), f"{r:.2f}" if r is not None else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict) -> str:
    m = result["machine"]
    peers = [b for b, info in result["brokers"].items() if b != HOME and info.get("available")]
    lines = [f"# kafkito benchmark, {result['started'][:16].replace('T', ' ')} ({result['mode']} run, "
             f"{result['duration_s'] / 60:.1f} min)", ""]
    lines.append(f"Machine: {m['cpu_count']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
                 f"Python {m['python']}. Measured in this run: loopback TCP **{m['loopback_mb_s']:,.0f} MB/s**, "
                 f"disk sequential write+fsync **{m['disk_write_mb_s']:,.0f} MB/s**, 4 KB write+fsync "
                 f"p50 {m['fsync_4k_ms']['p50_ms']:.2f} ms / p99 {m['fsync_4k_ms']['p99_ms']:.2f} ms. "
                 f"Load average at start: {', '.join(f'{x:.1f}' for x in m['load_avg_at_start'])} "
                 "(teammates' test suites share the machine: compare ratios, not absolute figures).")
    lines.append("")
    lines.append("Brokers: " + "; ".join(
        f"**{b}**: {info.get('description', '')}" + ("" if info.get("available") else f" — NOT RUN: {info['reason']}")
        for b, info in result["brokers"].items()) + ".")
    lines.append("")
    if result.get("command"):
        lines += [f"Command: `{result['command']}` (from the repository root).", ""]
    lines.append("Load generator: confluent-kafka " + result.get("client", "") + f", {result['producers']} producer "
                 f"processes for throughput, {result['produce_s']:g} s per produce measurement; "
                 "brokers started fresh per measurement and interleaved; medians of repetitions.")
    lines.append("")
    head = ["workload", "figure", HOME] + [x for p in peers for x in (p, f"{HOME}/{p}")]
    lines += ["## Summary", ""] + _table(head, [r for r in ratio_rows(result) if r["metric"] in SUMMARY], peers)
    lines += ["", "## Targets (issue 6)", "", "| workload | figure | target | measured | met |", "|---|---|---|---|---|"]
    for t in evaluate(result):
        v = t["value"]
        if isinstance(v, float):
            shown = f"{v:.2f}x" if t["kind"] in ("ratio_min", "flat") else _fmt(v)
        else:
            shown = str(v)[:120]
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['case']} | {t['metric']} | {t['target']} | {shown} | {met} |")
    lines += ["", "## All figures", ""] + _table(head, ratio_rows(result), peers)
    errors = [(c["id"], b, e) for c in result["cases"] for b, e in c.get("errors", {}).items()]
    if errors:
        lines += ["", "Failed or not run:", ""]
        lines += [f"- {cid} on {b}: {e}" for cid, b, e in errors]
    notes = [(c["id"], c["note"]) for c in result["cases"] if c.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {cid}: {note}" for cid, note in notes]
    return "\n".join(lines) + "\n"


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = [b for b, info in result["brokers"].items() if b != HOME and info.get("available")]
    keep = {"mb_s", "p50_ms", "p99_ms", "join_s", "startup_serve_ms", "idle_rss_mb", "rss_after_fill_mb"}
    rows = [r for r in ratio_rows(result) if r["metric"] in keep and r["ratios"]]
    labels = [f"{r['case']} {r['label']}" for r in rows]
    height = max(4.0, 0.2 * len(rows) * max(1, len(peers)) + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    bar_h = 0.8 / max(1, len(peers))
    colors = ["tab:orange", "tab:purple", "tab:green", "tab:red"]
    for j, p in enumerate(peers):
        ys, xs = [], []
        for i, r in enumerate(rows):
            a = advantage(r, p)
            if a is not None:
                ys.append(len(rows) - 1 - i + (j - (len(peers) - 1) / 2) * bar_h)
                xs.append(a)
        ax.barh(ys, xs, height=bar_h, color=colors[j % len(colors)], label=f"vs {p}")
        for y, x in zip(ys, xs):
            ax.text(x * 1.04, y, f"{x:.2f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(list(reversed(labels)), fontsize=7)
    all_x = [advantage(r, p) for r in rows for p in peers if advantage(r, p)]
    if all_x:
        ax.set_xlim(min(0.5, min(all_x) / 1.5), max(2.0, max(all_x) * 2.5))
    m = result["machine"]
    ax.set_xlabel("kafkito advantage (x, log scale): MB/s kafkito/peer; times, CPU, RSS peer/kafkito. "
                  "Right of 1 = kafkito ahead")
    ax.set_title(f"kafkito vs peers, {result['started'][:10]}: {m['cpu_count']} cores, loopback "
                 f"{m['loopback_mb_s']:,.0f} MB/s, disk {m['disk_write_mb_s']:,.0f} MB/s", fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
