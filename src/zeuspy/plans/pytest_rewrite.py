"""Test modules with their asserts rewritten, held by the ``test_environment`` phase.

pytest rewrites the asserts of every test module and conftest file it imports (and of the
modules plugins ask it to): it parses the source, rewrites the tree and compiles it, and keeps
the result in a ``__pycache__`` file. Where it cannot write one (``PYTHONDONTWRITEBYTECODE``,
common in containers; a read-only tree) it does all of that again in every run, and a big test
module costs a lot: about 190 ms for attrs' ``tests/test_make.py``, in each run.

Here a command in which pytest found no usable ``__pycache__`` file for such a module, and will
not write one, teaches its phase the path (:func:`zeuspy.shim.learned.teach`, sent once its
status is reported). The phase rewrites the file with pytest's own function and holds the source
bytes and the code. pytest's loader asks its ``_read_pyc`` for a cached rewrite before it
rewrites a module; in a command forked from the phase that answer is, when pytest's own
``__pycache__`` file gives none, the held code, but only when the file's bytes now are exactly
the bytes it was made from and the ``enable_assertion_pass_hook`` setting (the only part of the
configuration the rewrite reads) is the same. Otherwise pytest rewrites the module itself, as
always, and the phase learns the new version. A file whose rewrite warns (an assert on a tuple,
an invalid escape sequence) is never held: pytest must warn in every run, as it does without a
``__pycache__`` file. So the code is what pytest would have made of those bytes, and what goes
wrong in a rewrite (a syntax error) is pytest's alone, with its own traceback.

The phase never imports these modules (their import-time code runs in each command, as with plain
pytest), and a test file's edit restarts no phase. Only files under the run's rootdir or in a
``site-packages`` folder are taught (not the temporary projects of a test suite that runs pytest
inside its tests). Held code costs the phase about six times the source's size in memory.
``ZEUSPY_PYTEST_WARM=0`` in a command, or the ``learn_imports`` setting off, turns it off.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from zeuspy.shim import learned

#: The kind of lesson a command teaches its phase: "FLAG PATH" (FLAG: 0 or 1).
KIND = "pytest-rewrite"
#: The ini option the rewrite reads.
PASS_HOOK = "enable_assertion_pass_hook"
#: The most files a phase holds, the largest it takes (a bigger one could hold requests back
#: for a second while it is rewritten), and the most source bytes in all.
FILES_LIMIT = 5_000
FILE_BYTES_LIMIT = 1024 * 1024
TOTAL_BYTES_LIMIT = 16 * 1024 * 1024

#: In a command: the paths whose held code it took (for tests and debugging).
taken: list[str] = []


@dataclass(frozen=True)
class Held:
    """One rewritten module: the exact source it was made from, and its code."""

    source: bytes
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
#: pytest's ``_read_pyc`` and ``_rewrite_test`` (None: not installed).
_original_read: Any = None
_rewrite: Any = None


# -- in a command ---------------------------------------------------------------------------------
def _read_pyc(source: Path, pyc: Path, *args: Any, **kwargs: Any) -> CodeType | None:
    """pytest's ``_read_pyc`` in a command: its answer, else the held code for ``source``
    (None: pytest rewrites the module, and the phase is taught it). Never raises."""
    code = _original_read(source, pyc, *args, **kwargs)
    if code is not None:
        return code  # type: ignore[no-any-return]
    try:
        return _held_code(source)
    except Exception:  # anything unexpected: pytest rewrites it, as without zeus
        return None


def _held_code(source: Path) -> CodeType | None:
    from zeuspy.plans.pytest_warm import enabled

    config = _session_config()
    flag = _pass_hook(config)
    if flag is None or not enabled():
        return None
    path = os.fspath(source)
    held = _held.get((path, flag))
    if held is not None and _read_bounded(path, len(held.source)) == held.source:
        taken.append(path)
        return held.code
    if _teachable(path, config) and not _pyc_kept(source):
        learned.teach(KIND, f"{int(flag)} {path}")
    return None


def _session_config() -> Any:
    """The configuration of the pytest session importing modules: that of the one assertion
    rewriting hook installed (None when there are several, as in a nested ``pytest.main``)."""
    from _pytest.assertion.rewrite import AssertionRewritingHook

    hooks = [finder for finder in sys.meta_path if isinstance(finder, AssertionRewritingHook)]
    return hooks[0].config if len(hooks) == 1 else None


def _pass_hook(config: Any) -> bool | None:
    if config is None:
        return None
    try:
        return bool(config.getini(PASS_HOOK))
    except Exception:  # not pytest's configuration as expected: nothing is held for it
        return None


def _teachable(path: str, config: Any) -> bool:
    """Whether the phase should hold ``path``: under the run's rootdir or in a library folder."""
    try:
        root = os.fspath(config.rootpath)
    except Exception:
        return False
    return path.startswith(root.rstrip(os.sep) + os.sep) or learned.in_install_folder(path)


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


def _read_bounded(path: str, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` when it has at most ``limit``, else None (a
    bigger, special or missing file; never waits on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # not inherited (Python's default)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


# -- in the phase ---------------------------------------------------------------------------------
def learn(payload: str) -> bool:
    """In the phase, a command's lesson "FLAG PATH": rewrite the file and hold its code.
    Returns whether something new is held. Refuses (False) a malformed payload, a path that is
    not an absolute ``.py`` regular file, a file over :data:`FILE_BYTES_LIMIT`, what is past the
    phase's limits (once files that are gone are let go of), a file that fails to rewrite (a
    syntax error) and one whose rewrite warns."""
    global _held_bytes
    flag_text, _, path = payload.partition(" ")
    if _rewrite is None or flag_text not in ("0", "1") or not os.path.isabs(path):
        return False
    if not path.endswith(".py") or os.path.normpath(path) != path:
        return False
    key = (path, flag_text == "1")
    before = _held.get(key)
    source = _read_bounded(path, FILE_BYTES_LIMIT)
    if source is None or (before is not None and source == before.source):
        return False  # not a file to hold, or held already (several commands taught it)
    growth = len(source) - (len(before.source) if before is not None else 0)

    def full() -> bool:
        return ((before is None and len(_held) >= FILES_LIMIT)
                or _held_bytes + growth > TOTAL_BYTES_LIMIT)

    if full():
        _forget_gone()
        if full():
            return False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source_hash, code = _rewrite(Path(path), _PassHookSetting(key[1]))
    except Exception:  # not Python, gone: the command rewrites it itself
        return False
    if caught or importlib.util.source_hash(source) != source_hash:
        return False  # it warns (each run must), or it changed while it was rewritten
    _held[key] = Held(source, code)
    _held_bytes += growth
    return True


def _forget_gone() -> None:
    """Let go of the code of files that no longer exist."""
    global _held_bytes
    for key in [key for key in _held if not os.path.exists(key[0])]:
        _held_bytes -= len(_held.pop(key).source)


def install() -> bool:
    """In the phase: commands forked from here take held code, and teach the phase. False
    (nothing done) when pytest's rewrite is not made of the functions this module expects."""
    global _original_read, _rewrite
    import inspect

    from _pytest.assertion import rewrite

    read = getattr(rewrite, "_read_pyc", None)
    rewrite_test = getattr(rewrite, "_rewrite_test", None)
    if (read is None or rewrite_test is None
            or list(inspect.signature(read).parameters)[:2] != ["source", "pyc"]
            or list(inspect.signature(rewrite_test).parameters) != ["fn", "config"]
            # Before pytest 9.2 it gives (os.stat_result, code): no source hash to check.
            or not str(inspect.signature(rewrite_test).return_annotation).startswith(
                "tuple[bytes")
            or not hasattr(rewrite, "AssertionRewritingHook")):
        return False
    if _original_read is None:
        _original_read, _rewrite = read, rewrite_test
        rewrite._read_pyc = _read_pyc
        learned.on_lesson(KIND, learn)
    return True
