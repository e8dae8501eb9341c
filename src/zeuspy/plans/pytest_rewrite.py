"""Test modules with their asserts rewritten, held by the ``test_environment`` phase.

pytest rewrites the asserts of every test module and conftest file it imports (and of the
modules plugins ask it to): it parses the source, rewrites the tree and compiles it, and keeps
the result in a ``__pycache__`` file. Where it cannot write one (``PYTHONDONTWRITEBYTECODE``,
common in containers; a read-only tree) it does all of that again in every run, and a big
test module costs a lot: attrs' ``tests/test_make.py`` takes about 100 ms, its 31 test files
about 600 ms, in each run.

Here a command that rewrote a module pytest cannot keep a ``__pycache__`` file for teaches its
phase the path (:func:`zeuspy.shim.learned.teach`,
once its status is reported); the phase rewrites the file with pytest's own function and keeps
the source bytes and the code. A later command forked from the phase takes the held code for a
module only when the file's bytes now are exactly the bytes it was made from, with the same
``enable_assertion_pass_hook`` setting (the only part of the configuration the rewrite reads);
otherwise pytest rewrites it itself, and the phase learns the new version. The code is what
pytest's function makes of those bytes, so a run cannot tell it from its own. pytest's own
``__pycache__`` files, when they exist, are read first, as always: this only replaces the
rewrite. ``ZEUSPY_PYTEST_WARM=0`` in a command, or the ``learn_imports`` setting off, turns it
off.

The phase never imports these modules (their import-time code runs in each command, as with
plain pytest); a test file's edit does not restart a phase.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from zeuspy.shim import learned

#: The kind of lesson a command teaches its phase: "FLAG PATH" (FLAG: 0 or 1).
KIND = "pytest-rewrite"
#: The ini option the rewrite reads.
PASS_HOOK = "enable_assertion_pass_hook"
#: The most files a phase holds, the largest it takes, and the most source bytes in all.
FILES_LIMIT = 5_000
FILE_BYTES_LIMIT = 4 * 1024 * 1024
TOTAL_BYTES_LIMIT = 64 * 1024 * 1024

#: In a command: the paths whose held code it took (for tests and debugging).
taken: list[str] = []


@dataclass(frozen=True)
class Held:
    """One rewritten module: the exact source it was made from, its hash and its code."""

    source: bytes
    source_hash: bytes
    code: CodeType


class _PassHookSetting:
    """The configuration the phase hands pytest's rewrite: it answers the one setting the
    command reported, and fails for anything else (the rewrite then fails: nothing is held)."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def getini(self, name: str) -> object:
        if name != PASS_HOOK:
            raise KeyError(name)
        return self.value


_held: dict[tuple[str, bool], Held] = {}
_held_bytes = 0
_original: Any = None


def _pass_hook(config: Any) -> bool | None:
    try:
        return bool(config.getini(PASS_HOOK))
    except Exception:  # not pytest's configuration as expected: nothing is held for it
        return None


def _rewrite_test(fn: Path, config: Any) -> tuple[bytes, CodeType]:
    """pytest's ``_rewrite_test`` in a command: the held code when the file's bytes are those it
    was made from, else pytest's rewrite (and the phase is taught the file)."""
    # Out of the traceback pytest prints when the rewrite fails (a syntax error): plain
    # pytest's shows no such frame.
    __tracebackhide__ = True
    from zeuspy.plans.pytest_warm import enabled

    flag = _pass_hook(config)
    if flag is None or not enabled():
        return _original(fn, config)  # type: ignore[no-any-return]
    path = os.fspath(fn)
    held = _held.get((path, flag))
    if held is not None:
        try:
            source = fn.read_bytes()
        except OSError:
            source = None
        if source == held.source:
            taken.append(path)
            return held.source_hash, held.code
    result = _original(fn, config)
    if not _pyc_kept(fn):
        learned.teach(KIND, f"{int(flag)} {path}")
    return result  # type: ignore[no-any-return]


def _pyc_kept(fn: Path) -> bool:
    """Whether pytest keeps ``fn``'s rewrite in a ``__pycache__`` file it reads in later runs
    (then the phase need not hold it): bytecode is written and the cache folder (or the nearest
    folder above it that exists) is writable."""
    if sys.dont_write_bytecode:
        return False
    from _pytest.assertion import rewrite

    try:
        folder = Path(rewrite.get_cache_dir(fn))
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        return os.access(folder, os.W_OK)
    except Exception:  # pytest moved it: hold the code (it is exact either way)
        return False


def learn(payload: str) -> bool:
    """In the phase, a command's lesson "FLAG PATH": rewrite the file and hold its code.
    Returns whether something new is held. Refuses (False) a malformed payload, a path that is
    not an absolute ``.py`` file, a file over :data:`FILE_BYTES_LIMIT`, and anything past the
    phase's limits; a file that fails to rewrite (a syntax error) is not held."""
    global _held_bytes
    flag_text, _, path = payload.partition(" ")
    if _original is None or flag_text not in ("0", "1") or not os.path.isabs(path):
        return False
    if not path.endswith(".py") or os.path.normpath(path) != path:
        return False
    key = (path, flag_text == "1")
    before = _held.get(key)
    if before is None and len(_held) >= FILES_LIMIT:
        return False
    try:
        if os.stat(path).st_size > FILE_BYTES_LIMIT:
            return False
        if before is not None and Path(path).read_bytes() == before.source:
            return False  # held already (several commands taught it)
        source_hash, code = _original(Path(path), _PassHookSetting(key[1]))
        source = Path(path).read_bytes()
    except Exception:  # gone, unreadable, not Python: the command rewrites it itself
        return False
    if importlib.util.source_hash(source) != source_hash:
        return False  # changed while it was rewritten: the next command teaches it again
    growth = len(source) - (len(before.source) if before is not None else 0)
    if _held_bytes + growth > TOTAL_BYTES_LIMIT:
        return False
    _held[key] = Held(source, source_hash, code)
    _held_bytes += growth
    return True


def install() -> bool:
    """In the phase: commands forked from here take held code, and teach the phase. False
    (nothing done) when pytest's rewrite is not the function this module expects."""
    global _original
    import inspect

    from _pytest.assertion import rewrite

    function = getattr(rewrite, "_rewrite_test", None)
    if function is None or list(inspect.signature(function).parameters) != ["fn", "config"]:
        return False
    if _original is None:
        _original = function
        rewrite._rewrite_test = _rewrite_test
        learned.on_lesson(KIND, learn)
    return True
