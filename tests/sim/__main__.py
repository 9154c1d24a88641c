"""Run the simulation: ``python tests/sim --seed N`` replays one seed;
``python tests/sim --soak 600 --start 1000`` runs seeds from 1000 for ten minutes.

Options: ``--knobs flip_old_segment_bytes=1,lives=5`` switches faults (see ``Knobs``),
``--plant ack_before_fsync`` plants a bug (see planted.py), ``--seeds 0-199`` runs a range.
A run does not depend on PYTHONHASHSEED (checked: the same fingerprints under different
hash seeds), so a seed that failed under pytest replays here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # `python tests/sim`: make `sim` importable as a package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sim.sim import Knobs, run_seed, soak  # noqa: E402
else:
    from .sim import Knobs, run_seed, soak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/sim", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, help="run (replay) one seed")
    ap.add_argument("--seeds", help="a range of seeds, e.g. 0-199")
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="run seeds for this long")
    ap.add_argument("--start", type=int, default=0, help="first seed of a soak")
    ap.add_argument("--knobs", default="", help="e.g. flip_old_segment_bytes=1,lives=5")
    ap.add_argument("--plant", default=None, help="a planted bug (tests/sim/planted.py)")
    ap.add_argument("--trace", action="store_true", help="print the whole trace of a failing seed")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every seed's result")
    args = ap.parse_args(argv)
    knobs = Knobs.parse(args.knobs)
    if args.plant:
        knobs.plant = args.plant
    started = time.monotonic()
    if args.soak is not None:
        count, failures = soak(args.start, args.soak, knobs)
    else:
        if args.seed is not None:
            seeds = [args.seed]
        elif args.seeds:
            lo, _, hi = args.seeds.partition("-")
            seeds = list(range(int(lo), int(hi or lo) + 1))
        else:
            ap.error("give --seed, --seeds or --soak")
        failures = []
        for seed in seeds:
            result = run_seed(seed, knobs)
            if not result.ok:
                failures.append(result)
            if args.trace and (not result.ok or len(seeds) == 1):
                print("\n".join(result.trace))
            if args.verbose or not result.ok or len(seeds) == 1:
                print(result.report(knobs), flush=True)
        count = len(seeds)
    elapsed = time.monotonic() - started
    print(f"{count} seeds in {elapsed:.1f} s ({count / elapsed * 60:.0f} seeds/minute), "
          f"{len(failures)} failed" + (": " + " ".join(str(f.seed) for f in failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
