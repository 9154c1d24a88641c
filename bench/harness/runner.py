"""One benchmark run: machine limits, then every case on every broker, interleaved.

The JSON result is rewritten after each case, so an interrupted run still leaves what
it measured; the Markdown table and the chart are derived from it at the end (and can
be derived again with ``python -m bench report``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import statistics
import time
from pathlib import Path

from . import machine, report
from .brokers import BrokerUnderTest
from .workloads import Case, Context, NotSupported


def medians(samples: list[dict]) -> dict:
    keys = {k for s in samples for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {}
    for k in sorted(keys):
        vals = [s[k] for s in samples if isinstance(s.get(k), (int, float)) and s.get(k) is not None]
        if vals:
            out[k] = statistics.median(vals)
    return out


def run_case(ctx: Context, case: Case, brokers: list[BrokerUnderTest], index: int) -> dict:
    entry = {"id": case.id, "group": case.group, "note": case.note, "metrics": [m.__dict__ for m in case.metrics],
             "samples": {}, "errors": {}, "median": {}}
    for rep in range(case.reps):
        order = list(brokers) if (index + rep) % 2 == 0 else list(reversed(brokers))
        for b in order:
            if b.name in entry["errors"]:
                continue
            if case.only_persistent and not b.persistent:
                continue
            t0 = time.perf_counter()
            try:
                got = case.run(ctx, b)
            except NotSupported as exc:
                entry["errors"][b.name] = f"not supported: {exc}"
                ctx.log(f"    {b.name}: not supported: {exc}")
                continue
            except Exception as exc:  # recorded; the run goes on
                entry["errors"][b.name] = f"{type(exc).__name__}: {exc}"[:500]
                ctx.log(f"    {b.name}: FAILED {entry['errors'][b.name][:200]}")
                try:
                    b.stop()
                except Exception:
                    pass
                continue
            samples = got if isinstance(got, list) else [got]
            entry["samples"].setdefault(b.name, []).extend(samples)
            ctx.log(f"    {b.name}: {_brief(case, samples[-1])} ({time.perf_counter() - t0:.1f} s)")
    for name, samples in entry["samples"].items():
        entry["median"][name] = medians(samples)
    return entry


def _brief(case: Case, sample: dict) -> str:
    parts = []
    for m in case.metrics[:3]:
        v = sample.get(m.key)
        if v is not None:
            parts.append(f"{m.key}={v:.3g}")
    return " ".join(parts) or json.dumps(sample)[:120]


def run(ctx: Context, brokers: list[BrokerUnderTest], cases: list[Case], out_dir: Path, *,
        only: str | None = None, mode: str = "full", command: str = "") -> dict:
    from confluent_kafka import libversion

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = {"started": dt.datetime.now().isoformat(timespec="seconds"), "mode": mode, "command": command,
              "client": f"{libversion()[0]} (librdkafka)", "producers": ctx.producers, "produce_s": ctx.produce_s,
              "brokers": {}, "cases": [], "duration_s": 0.0}
    ctx.log("measuring the machine: loopback, disk, fsync")
    result["machine"] = machine.facts(ctx.workdir, disk_bytes=(256 if ctx.quick else 1024) * 1024 * 1024,
                                      quick=ctx.quick)
    m = result["machine"]
    ctx.log(f"  loopback {m['loopback_mb_s']:.0f} MB/s, disk {m['disk_write_mb_s']:.0f} MB/s, "
            f"fsync p50 {m['fsync_4k_ms']['p50_ms']:.2f} ms")
    usable = []
    for b in brokers:
        ok, reason = b.available()
        result["brokers"][b.name] = {"available": ok, "reason": reason, "description": b.description}
        if ok:
            usable.append(b)
        else:
            ctx.log(f"{b.name}: not run: {reason}")
    if only:
        cases = [c for c in cases if re.search(only, c.id)]
    json_path = out_dir / "results.json"
    for i, case in enumerate(cases):
        ctx.log(f"[{i + 1}/{len(cases)}] {case.id}")
        ctx.case_id = case.id
        result["cases"].append(run_case(ctx, case, usable, i))
        result["duration_s"] = time.perf_counter() - started
        json_path.write_text(json.dumps(result, indent=1))
    write_outputs(result, out_dir)
    return result


def write_outputs(result: dict, out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(result, indent=1))
    (out_dir / "results.md").write_text(report.markdown(result))
    report.chart(result, out_dir / "results.png")


def publish(out_dir: Path, bench_dir: Path) -> None:
    """Copy the table and the chart to their committed places, with the profiler findings
    (kept by hand in harness/FINDINGS.md) after the table."""
    text = (out_dir / "results.md").read_text()
    findings = Path(__file__).with_name("FINDINGS.md")
    if findings.exists():
        text += "\n" + findings.read_text()
    (bench_dir / "RESULTS.md").write_text("![kafkito vs peers](results.png)\n\n" + text)
    shutil.copyfile(out_dir / "results.png", bench_dir / "results.png")
