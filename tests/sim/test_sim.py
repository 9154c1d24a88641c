"""The simulation in CI: a fixed set of seeds holds every invariant, a seed replays exactly,
and each planted bug is found by some seed of that set and fails the same way on replay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.sim import Knobs, run_seed

CI_SEEDS = range(200)


def ci_knobs(seed: int) -> Knobs:
    """Even seeds flip bytes in old segments, odd seeds fill the disk instead: each passes
    alone on today's code, together they do not yet (see the xfail below)."""
    return Knobs() if seed % 2 == 0 else Knobs(flip_old_segment_bytes=False, disk_full=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_seed_holds_every_invariant(seed):
    knobs = ci_knobs(seed)
    result = run_seed(seed, knobs)
    assert result.ok, result.report(knobs)
    assert result.lives == knobs.lives and result.steps > 3  # it ran every life (crashes may cut one short)


def test_a_seed_replays_exactly():
    first, again = run_seed(3), run_seed(3)
    assert first.ok and again.ok
    assert (first.steps, first.fingerprint) == (again.steps, again.fingerprint)
    assert run_seed(4).fingerprint != first.fingerprint


def test_the_command_replays_a_seed_under_any_hash_seed():
    """`python tests/sim --seed N` prints the same fingerprint as the run in this process,
    whatever PYTHONHASHSEED each has (a seed failing in CI replays from the command)."""
    here = run_seed(3)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "tests/sim", "--seed", "3"], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"fingerprint {here.fingerprint}" in out.stdout


def _first_failing_seed(knobs: Knobs):
    for seed in CI_SEEDS:
        result = run_seed(seed, knobs)
        if not result.ok:
            return result
    pytest.fail(f"no seed of the CI set found the planted bug {knobs.plant}")


@pytest.mark.slow
@pytest.mark.parametrize("plant, symptom", [
    ("ack_before_fsync", "acknowledged (acks=all)"),
    ("recovery_deletes_later_segment", "is gone after the restart"),
])
def test_a_planted_bug_is_found_and_replays_from_its_seed(plant, symptom):
    knobs = Knobs(plant=plant)
    found = _first_failing_seed(knobs)
    assert symptom in found.violation
    replay = run_seed(found.seed, knobs)
    assert (replay.violation, replay.violation_step, replay.fingerprint) == (
        found.violation, found.violation_step, found.fingerprint)
    assert run_seed(found.seed).ok  # the same seed without the planted bug holds


@pytest.mark.xfail(strict=True, reason="a damaged segment on a full disk: recovery isolates the "
                   "damage by writing a new segment, so the broker cannot start until there is room")
def test_damage_found_on_a_full_disk_does_not_stop_the_start():
    knobs = Knobs(disk_full=True)
    for seed in (39, 53, 92):
        result = run_seed(seed, knobs)
        assert result.ok, result.report(knobs)


@pytest.mark.xfail(strict=True, reason="found by the soak: after an unclean restart producer state is "
                   "rebuilt from the active segment only (broker/partitions.py load_producer_state), "
                   "so the retry of a batch written before the crash into an older segment (its first "
                   "answer was KAFKA_STORAGE_ERROR) is appended again")
def test_an_idempotent_retry_across_a_crash_is_not_appended_twice():
    knobs = Knobs(flip_old_segment_bytes=False)
    result = run_seed(1623, knobs)
    assert result.ok, result.report(knobs)
