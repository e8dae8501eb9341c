"""What a forked phase or command must not inherit, and what it must renew (docs/plans.md,
"Fork hygiene"): import caches, random generators, the signal mask, and - in commands - the
phase's exit handlers. Also records where each thread was started, for the warning that names a
thread alive at fork time."""

from __future__ import annotations

import atexit
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Any

from zeuspy.planfile import PLAN_MODULE

#: The phase this process is (or, in a command, was forked from); set by the shim.
current_phase = "boot"


def record_thread_starts() -> None:
    """Make every ``Thread.start`` note the phase and line that started it (``_zeus_origin``)."""
    original = threading.Thread.start
    if getattr(original, "_zeus_wrapped", False):
        return

    def start(self: threading.Thread) -> None:
        caller = sys._getframe(1)
        self._zeus_origin = (  # type: ignore[attr-defined]
            f"started by phase {current_phase} at {caller.f_code.co_filename}:{caller.f_lineno}")
        original(self)

    start._zeus_wrapped = True  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]


def describe_thread(thread: threading.Thread) -> str:
    origin = getattr(thread, "_zeus_origin", f"started in phase {current_phase} or before")
    return f"{thread.name!r} ({origin})"


def renew_after_fork() -> None:
    """In every forked phase and command: files created since boot become importable, random
    generators differ from the parent's and siblings' (signals: process.reset_signals)."""
    importlib.invalidate_caches()
    # `random` reseeds itself after fork (os.register_at_fork); numpy's global generator does not.
    numpy_random: Any = sys.modules.get("numpy.random")
    if numpy_random is not None:
        try:
            numpy_random.seed()
        except Exception:
            pass


def hide_plan_module() -> None:
    """In a command: the plan file's module leaves ``sys.modules``, which a program run by
    python would not list. A file of the project there is "local code" to tools that scan
    ``sys.modules`` by file: hypothesis draws examples from such modules' constants (and saves
    them in ``.hypothesis/constants``), so a ``zeus pytest`` would test with other examples
    than pytest. ``import zeus_plan`` still gives the phases' module (its state included), not
    a second run of the file: :class:`_HeldPlanModule` answers it."""
    module = sys.modules.pop(PLAN_MODULE, None)
    if module is not None:
        sys.meta_path.insert(0, _HeldPlanModule(module))


class _HeldPlanModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the plan file's module, and loads it as it is."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def find_spec(self, name: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name != PLAN_MODULE:
            return None
        location = getattr(self.module, "__file__", None)
        if location is None:
            return importlib.util.spec_from_loader(name, self)
        # With its file as its location, as the phase's import had it: tools that watch or
        # read modules' files (Django's autoreloader, inspect) see it as before.
        return importlib.util.spec_from_file_location(name, location, loader=self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        pass  # run once already, in a phase (importlib.reload does not run it again either)


def drop_inherited_exit_handlers() -> None:
    """In a command (and in a ``zeus pytest -n`` worker, forked from one): exit handlers
    registered in the process it was forked from clean up after that process (a temporary
    folder, a pool of workers, a server), which goes on using them, so this one must not run
    them when it exits. Only the standard library's own flushers come back, acting on what this
    process itself creates."""
    atexit._clear()
    logging: Any = sys.modules.get("logging")
    if logging is not None:
        atexit.register(logging.shutdown)
    weakref: Any = sys.modules.get("weakref")
    if weakref is not None:
        finalize = weakref.finalize
        for info in list(getattr(finalize, "_registry", {}).values()):
            info.atexit = False  # the phase's objects: finalized by the phase, if ever
        finalize._registered_with_atexit = False  # the command's own finalizers re-register
    util: Any = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._finalizer_registry.clear()
        process: Any = sys.modules.get("multiprocessing.process")
        if process is not None:
            process._children.clear()  # the phase's workers are not the command's children
        atexit.register(util._exit_function)


def own_group_calls_as_noops() -> None:
    """In a command that leads its session (a spare: shim/spare.py). ``os.setpgrp()``, or
    ``os.setpgid(0, 0)``, asks for a process group of its own, which it has: run from a shell it
    would be a no-op, but the kernel refuses any such call to a session leader (EPERM). Make the
    calls that would change nothing return as they would elsewhere; the others, made by the
    command's children included, go to the kernel."""
    setpgid = os.setpgid
    if getattr(setpgid, "_zeus_wrapped", False):
        return

    def own_setpgid(pid: int, pgrp: int) -> None:
        me = os.getpid()
        if pid in (0, me) and pgrp in (0, me) and os.getpgrp() == me:
            return  # already the leader of its own group
        setpgid(pid, pgrp)

    def own_setpgrp() -> None:
        own_setpgid(0, 0)

    own_setpgid._zeus_wrapped = True  # type: ignore[attr-defined]
    os.setpgid = own_setpgid
    os.setpgrp = own_setpgrp
