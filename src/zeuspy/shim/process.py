"""Process hygiene for the shim: titles, parent-death signals, signal resets, pre-fork checks."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from collections.abc import Callable

from zeuspy import procs

_LINUX = sys.platform.startswith("linux")
#: Set to 0 to fork without ``gc.freeze()`` (what it saves: bench/heavy.py, its memory table).
GC_FREEZE_ENV = "ZEUSPY_GC_FREEZE"


def set_title(title: str) -> None:
    """Show ``title`` in ``ps`` (``zeus phase: app``, ``zeus command: hello``); the kernel's
    short name of the process (``comm``, 15 bytes: ``ps -e``, ``top``) gets it without spaces
    (``zeus-command:he``). CPython 3.12+ counts a process's threads before ``os.fork`` by
    splitting ``/proc/self/stat`` on spaces: a ``comm`` with spaces shifts the fields, and every
    fork in a command warned "This process is multi-threaded" (an error under ``-W error``)
    where ``python`` does not."""
    try:
        import setproctitle

        setproctitle.setproctitle(title)
        setproctitle.setthreadtitle(comm_name(title))
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        pass


def comm_name(title: str) -> str:
    """``title`` as the kernel's short process name: no spaces, 15 bytes at most."""
    return title.replace(": ", ":").replace(" ", "-").encode()[:15].decode(errors="ignore")


#: The master's pid: the root phase's parent, recorded by the root phase (0: unknown).
master_pid = 0


def remember_master() -> None:
    """In the root phase, which the master started: its parent is the master."""
    global master_pid
    master_pid = os.getppid()


def master_alive() -> bool:
    """False once the master is known to be gone (its pid no longer exists)."""
    if master_pid <= 1:
        return True
    if _LINUX:
        # A dead master its parent has not reaped yet is a zombie: gone, though kill() works.
        return procs.alive(master_pid)
    return procs.exists(master_pid)  # (no ``ps`` every check where there is no /proc)


def die_with_parent(expected_parent: int) -> None:
    """Exit when the parent exits (Linux: PR_SET_PDEATHSIG; elsewhere the socket EOF does it).

    Checks the parent afterwards: if it died between our fork and the prctl, exit now.
    """
    procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:
        os._exit(1)


def reset_signals() -> None:
    """Give every signal a Python handler set back its default, drop the wakeup fd and unblock
    every signal: a forked process must not run handlers its parent installed (the phase's
    SIGCHLD reaper, app code's) nor inherit its mask. Uses ``_signal`` directly: ``signal``'s
    enum wrapping makes this loop 20 times slower."""
    import _signal

    _signal.set_wakeup_fd(-1)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
    for signum in range(1, _signal.NSIG):
        try:
            handler = _signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if callable(handler) and handler is not _signal.default_int_handler:
            _signal.signal(signum, _signal.SIG_DFL)
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)


#: The signals the master ends a phase with (its process group gets them on a restart).
TERMINATING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def block_termination() -> set[int | signal.Signals]:
    """Hold back the signals that end a phase (delivered once :func:`restore_mask` puts the
    returned mask back; a forked child clears its mask in :func:`reset_signals`)."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING)


def restore_mask(previous: set[int | signal.Signals]) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def discard_pending_termination() -> None:
    """In a child forked while :func:`block_termination` held: drop the terminating signals
    that reached the parent's process group between the fork and the child's ``setsid`` (they
    were meant for the phase), which unblocking would deliver. Ignoring a pending signal
    discards it; the defaults are back before anything unblocks them."""
    for signum in TERMINATING:
        signal.signal(signum, signal.SIG_IGN)
    for signum in TERMINATING:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)


_before_fork_hooks: list[Callable[[], object]] = []


def before_fork(hook: Callable[[], object]) -> None:
    """Run ``hook`` in this process (and the phases forked from it) before each fork the shim
    makes: phases, runners and commands; never before forks of the user's own code."""
    _before_fork_hooks.append(hook)


def prepare_fork() -> None:
    """Run the :func:`before_fork` hooks, flush stdio (else children print the parent's buffered
    output again) and freeze the heap
    (so the garbage collector does not touch, and so copy, pages shared with the children).
    Warns, naming them, when threads other than the main one are alive: fork copies only the
    calling thread, and a lock another thread held stays locked forever in the child."""
    for hook in list(_before_fork_hooks):
        try:
            hook()
        except Exception as exc:  # a hook's failure must not stop the phase from serving
            print(f"zeus: a before-fork hook failed: {exc!r}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        from zeuspy.shim import hygiene

        names = "; ".join(hygiene.describe_thread(t) for t in others)
        print(
            f"zeus: warning: phase {hygiene.current_phase} forks with threads alive: {names}. "
            "The child gets none of them and any lock they held stays locked; start threads in "
            "after_fork or in commands instead.",
            file=sys.stderr,
            flush=True,
        )
    if os.environ.get(GC_FREEZE_ENV, "1") != "0":
        gc.freeze()
