"""Running load-generator workers (bench.harness.loadgen) from the harness.

Workers are separate processes so that several producers can use several cores and so
that the harness (which samples the broker's CPU and RSS) never competes with the load
for the GIL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext

from .brokers import REPO

BARRIER_MODES = {"produce", "txn_produce", "consume", "e2e_consume"}


class Worker:
    def __init__(self, job: dict) -> None:
        self.job = job
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.harness.loadgen", json.dumps(job)], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def wait_ready(self, timeout_s: float = 120) -> None:
        if self.job["mode"] not in BARRIER_MODES:
            return
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            rest = line + self.proc.stdout.read()
            raise RuntimeError(f"worker did not get ready: {rest.strip()[-300:]} {self.proc.stderr.read()[-500:]}")

    def go(self) -> None:
        if self.job["mode"] in BARRIER_MODES:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()

    def result(self, timeout_s: float = 600) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return {"error": f"worker timed out after {timeout_s} s"}
        lines = [line for line in out.splitlines() if line.strip()]
        if not lines:
            return {"error": f"worker printed nothing (status {self.proc.returncode}): {err.strip()[-500:]}"}
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            return {"error": f"worker output not JSON: {lines[-1][:200]} {err.strip()[-300:]}"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_together(jobs: list[dict], timeout_s: float = 600, *,
                 during: AbstractContextManager | None = None) -> tuple[list[dict], float]:
    """Start all workers, release them at once; (results, wall seconds from go to last answer).

    ``during`` (e.g. the broker's ResourceWatch) is held from the release to the last answer,
    so it covers the measured part and not the workers' start-up."""
    workers = [Worker(job) for job in jobs]
    try:
        for w in workers:
            w.wait_ready()
        with during if during is not None else nullcontext():
            t0 = time.perf_counter()
            for w in workers:
                w.go()
            results = [w.result(timeout_s) for w in workers]
            return results, time.perf_counter() - t0
    finally:
        for w in workers:
            w.kill()


def first_error(results: list[dict]) -> str | None:
    for r in results:
        if r.get("error"):
            return r["error"]
    return None
