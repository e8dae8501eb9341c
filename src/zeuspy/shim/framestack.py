"""Room on CPython's frame stack for a command, so that it never pays for crossing a chunk edge.

Since 3.11 CPython keeps Python frames on a per-thread stack made of chunks (16 KiB at first).
A call that does not fit in the current chunk maps a new one, and the return of the first frame in
a chunk unmaps it again. A program whose call depth goes up and down across a chunk's edge maps
and unmaps 16 KiB (two or more page faults) on every such call. Where the edges fall depends on
how deep the program starts: a command forked inside the shim starts several frames deeper than
the same program run by ``python`` or the ``pytest`` script, so its edges fall elsewhere. On the
attrs suite that meant ~100,000 map/unmap pairs and 4x the page faults of plain pytest (1 s of
system time; docs/architecture.md, "Whole suites").

:func:`call_with_room` calls a function from a frame so large that it is placed at the start of a
new 1 MiB chunk, which leaves the callee about 512 KiB (65,000 slots: recursion-limit depth for
most code) in that chunk: below that depth the program never crosses an edge at all, wherever it
started. The big frame's slots are reserved, not written: only the pages used are touched.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Slots of the big frame's value stack: with the frame's own slots and the 1,000 that CPython
#: adds when sizing a chunk this just passes 512 KiB, so the chunk is 1 MiB and about half of it
#: is left for the callee's frames.
ROOM_SLOTS = 65_536


def _call(function: Callable[[], T]) -> T:
    return function()


def _roomy(function: Callable[[], T]) -> T:  # replaced below, on CPython 3.11+
    return function()


if sys.implementation.name == "cpython" and sys.version_info >= (3, 11):
    # Before 3.11 a frame is a heap object of its own: there are no chunks to cross.
    _roomy = types.FunctionType(_call.__code__.replace(co_stacksize=ROOM_SLOTS), globals(),
                                "call_with_room")


def call_with_room(function: Callable[[], T]) -> T:
    """``function()``, called from a frame that gives it a 1 MiB frame-stack chunk of its own;
    returns or raises what it does."""
    return _roomy(function)
