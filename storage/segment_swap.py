"""Replacing segments by cleaned ones: the file names of a swap and its recovery at open.

Theory of operation. The cleaner (cleaner.py) writes the cleaned copy of a run of segments
``[B, E)`` (B: the first segment's base offset, E: the base offset of the first segment
after the run) as ``<B>.log.cleaned`` and fsyncs it. The swap then goes, under the log's lock
(``PartitionLog.replace_segments``):

1. rename ``<B>.log.cleaned`` -> ``<B>.log.<E>.swap``, fsync the directory. *This is the
   commit point*: from here a crash finishes the swap, before it rolls it back;
2. rename every old segment of ``[B, E)`` (``.log``, ``.index``, ``.timeindex``) to
   ``.deleted`` (removed after ``file.delete.delay.ms``, as retention's, so a reader holding
   one keeps reading it);
3. rename ``<B>.log.<E>.swap`` -> ``<B>.log``, write its indexes, fsync the directory.

The swap file carries E in its name because the cleaned copy alone cannot say where the
run ended: its last batch may end well before E (everything after it was superseded).

Recovery at open (``finish_interrupted_swaps``, before any other leftover is removed): a
``.cleaned`` file is a swap that never committed: removed, the old segments are intact. A
``.swap`` file committed: every old segment file with a base offset in ``[B, E)`` is
removed (whatever step 2 did not get to), then the swap file is renamed to ``<B>.log``;
its missing indexes make recovery scan it in full and rebuild them. Either way the
directory holds the old run or the new one, never both, so no offset is served twice and
no latest value is lost.
"""

from __future__ import annotations

import os
import re

from .fileio import FileIO
from .segment import LOG_SUFFIX, segment_prefix

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
_SWAP_FILE = re.compile(r"^(\d{20})\.log\.(\d{20})\.swap$")
_SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")


def cleaned_path(directory: str, base_offset: int) -> str:
    return os.path.join(directory, segment_prefix(base_offset) + LOG_SUFFIX + CLEANED_SUFFIX)


def swap_path(directory: str, base_offset: int, end_offset: int) -> str:
    return os.path.join(directory, f"{segment_prefix(base_offset)}{LOG_SUFFIX}."
                                   f"{segment_prefix(end_offset)}{SWAP_SUFFIX}")


def finish_interrupted_swaps(io: FileIO, directory: str) -> list[str]:
    """Finish every committed swap found in ``directory`` (module docstring); returns what
    it did, one line per file, for the recovery report. ``.cleaned`` files are left to the
    log's leftover removal."""
    done: list[str] = []
    names = sorted(io.listdir(directory))
    swaps = [(int(m.group(1)), int(m.group(2)), name)
             for name in names if (m := _SWAP_FILE.match(name))]
    if not swaps:
        return done
    for base, end, name in swaps:
        for other in names:
            m = _SEGMENT_FILE.match(other)
            if m and base <= int(m.group(1)) < end:
                path = os.path.join(directory, other)
                if io.exists(path):
                    io.unlink(path)
                    done.append(f"{other} (replaced by a cleaned segment)")
        io.rename(os.path.join(directory, name),
                  os.path.join(directory, segment_prefix(base) + LOG_SUFFIX))
        done.append(f"{name} (swap finished)")
    io.fsync_dir(directory)
    return done


__all__ = ["CLEANED_SUFFIX", "SWAP_SUFFIX", "cleaned_path", "finish_interrupted_swaps", "swap_path"]
