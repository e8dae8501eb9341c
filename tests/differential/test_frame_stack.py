"""Issue 12, item 1: a command never pays more for CPython's frame stack than ``python`` does.

CPython 3.11+ keeps frames on chunks of a per-thread stack; a call depth that goes up and down
across a chunk's edge maps and unmaps a chunk on every crossing (page faults, system time). A
command forked in the shim starts deeper than the same script run by ``python``, so the edges fall
elsewhere: the attrs suite paid 4x the page faults of plain pytest. The probe sweeps every depth
up to a few thousand frame slots, so both sides cross edges if they have them, and counts its own
minor page faults and ``mmap`` calls' effect; zeuspy's command runs with room (shim/framestack.py)
and must cross none.
"""

from __future__ import annotations

import sys

import pytest

from tests.differential.harness import run_one
from tests.harness.project import PyProject

PROBE = """\
import resource

def down(n):
    if n:
        return down(n - 1)
    return 0

before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for depth in range(400):
    for _ in range(100):
        down(depth)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PROJECT_FILES = {"sweep.py": PROBE}
#: Faults a sweep may take without crossing a chunk edge (a few pages of new frames, the odd
#: page of the heap); a sweep that crosses edges takes tens of thousands.
NO_CROSSING = 2_000


@pytest.mark.skipif(sys.version_info < (3, 11), reason="frames are heap objects before 3.11")
def test_command_crosses_no_frame_chunk_edge(zeus_project: PyProject) -> None:
    python = run_one(zeus_project, "$PY sweep.py", "python")
    zeus = run_one(zeus_project, "$PY sweep.py", "zeus")
    assert python.status == zeus.status == 0, (python, zeus)
    faults_python, faults_zeus = int(python.stdout), int(zeus.stdout)
    assert faults_zeus < NO_CROSSING, (faults_zeus, faults_python)
    assert faults_zeus <= faults_python, (faults_zeus, faults_python)
