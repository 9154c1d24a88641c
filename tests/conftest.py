"""Suite-wide settings and fixtures.

Hypothesis profiles: ``default`` keeps the whole suite inside CI's time budget on two
cores; ``thorough`` (``HYPOTHESIS_PROFILE=thorough``) runs many more examples locally.

``small_tmpfs``: a real, small file system that really fills up (root only: the tests
that need it skip, saying why, where mounting is impossible).
"""

import os
import subprocess

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


class Tmpfs:
    """A mounted tmpfs of ``size_bytes``: ``fill()`` takes every free byte, ``make_room()``
    gives them back."""

    def __init__(self, path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until ENOSPC (in shrinking chunks, so the last page is used too)."""
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass

    def make_room(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_tmpfs(tmp_path):
    """``mount(size_bytes) -> Tmpfs``; unmounted after the test."""
    mounted = []

    def mount(size_bytes: int, name: str = "mnt") -> Tmpfs:
        path = tmp_path / name
        path.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs (a disk that really fills) needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                           capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
        mounted.append(path)
        return Tmpfs(path, size_bytes)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
