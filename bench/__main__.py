"""``python -m bench run``: kafkito side by side with peer brokers, in one run.

    .venv/bin/python -m bench run [--quick] [--big] [--brokers kafkito,tansu,nafka]
                                  [--bootstrap HOST:PORT ...] [--only REGEX] [--publish]
    .venv/bin/python -m bench report [bench/results/results.json]
    .venv/bin/python -m bench client [--repeat N] [--scale X]   (kafkito's client vs other clients)

``run`` measures the machine (loopback, disk, fsync), then every workload on every
broker (each started fresh on 127.0.0.1, interleaved), and writes results.json,
results.md and results.png into bench/results/. ``--publish`` also copies the table and
the chart to bench/RESULTS.md and bench/results.png, the committed copies. A full run
takes about 12 minutes on 2 cores. ``--quick`` (about 4 minutes) repeats nothing, skips the
1,000-partition case and most zstd/acks=all/100 B/1 MB produce cases; ``--big`` adds the
10 GB retained-data case (kafkito only; needs about 25 GB of free disk). ``report``
re-renders the table and chart from a JSON result.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks")
    run.add_argument("--quick", action="store_true", help="about 4 minutes: fewer cases, no repetitions")
    run.add_argument("--big", action="store_true", help="add the 10 GB retained-data case")
    run.add_argument("--brokers", default="kafkito,tansu,nafka",
                     help="comma-separated brokers to start (default kafkito,tansu,nafka)")
    run.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT",
                     help="also measure an already running broker (repeatable)")
    run.add_argument("--only", metavar="REGEX", help="only the cases whose id matches")
    run.add_argument("--produce-s", type=float, help="seconds per produce measurement (default 4, quick 2)")
    run.add_argument("--producers", type=int, default=2, help="producer processes for throughput (default 2)")
    run.add_argument("--consumers", type=int, default=1,
                     help="consumer processes for consume throughput (default 1)")
    run.add_argument("--out", type=Path, default=BENCH / "results", help="output directory")
    run.add_argument("--profile", action="store_true",
                     help="record kafkito with py-spy during each measured part (collapsed stacks in --out)")
    run.add_argument("--publish", action="store_true", help="copy results.md/png to bench/RESULTS.md, results.png")
    rep = sub.add_parser("report", help="re-render the table and chart from a JSON result")
    rep.add_argument("json", type=Path, nargs="?", default=BENCH / "results" / "results.json")
    rep.add_argument("--publish", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:  # python -m bench client: the client comparison (bench/client_bench.py)
        from .client_bench import main as client_main

        return client_main(argv[1:])
    args = _parser().parse_args(argv)
    from .harness import brokers as B
    from .harness import runner

    if args.command == "report":
        import json

        result = json.loads(args.json.read_text())
        runner.write_outputs(result, args.json.parent)
        if args.publish:
            runner.publish(args.json.parent, BENCH)
        print((args.json.parent / "results.md").read_text())
        return 0

    from .harness.workloads import Context, plan

    out: Path = args.out
    workdir = out / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    makers = {"kafkito": B.Kafkito, "tansu": B.Tansu, "nafka": B.Nafka}
    selected = []
    for name in filter(None, args.brokers.split(",")):
        if name not in makers:
            print(f"unknown broker {name!r} (known: {', '.join(makers)})", file=sys.stderr)
            return 2
        selected.append(makers[name](workdir / name))
    selected += [B.External(workdir / "external", address) for address in args.bootstrap]
    produce_s = args.produce_s or (2.0 if args.quick else 4.0)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - t0:7.1f}s {msg}", flush=True)

    ctx = Context(workdir=workdir, quick=args.quick, big=args.big, produce_s=produce_s, producers=args.producers,
                  consumers=args.consumers, log=log, profile=args.profile, out_dir=out,
                  consume_max_s=20.0 if args.quick else 30.0)
    if args.big:
        free_gb = shutil.disk_usage(out).free / 1e9
        if free_gb < 25:
            log(f"--big needs about 25 GB free, {free_gb:.0f} GB available: the 10 GB case is skipped")
            ctx.big = False
    try:
        command = ".venv/bin/python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
        runner.run(ctx, selected, plan(ctx), out, only=args.only, mode="quick" if args.quick else "full",
                   command=command)
    finally:
        for b in selected:
            if b.managed and b.pid:
                b.stop()
    if args.publish:
        runner.publish(out, BENCH)
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
