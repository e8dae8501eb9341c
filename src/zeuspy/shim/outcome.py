"""A command's outcome as ``python`` would give it: the exit status of a return value,
``SystemExit`` or a signal, and the traceback of an uncaught exception without zeuspy's frames."""

from __future__ import annotations

import os
import signal
import sys

from zeuspy import procs
from zeuspy.plan import Plan, method_name, run_after_fork
from zeuspy.protocol.messages import ExitStatus


def exit_status(code: object) -> int:
    """Map a return value or ``SystemExit.code`` to a status, as the interpreter does at exit."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def status_from_wait(status: int) -> int:
    """A waitpid status as a shell shows it: the exit code, or 128+N when killed by signal N."""
    return exit_status_of(status).status


def exit_status_of(wait_status: int) -> ExitStatus:
    """A waitpid status as an :class:`ExitStatus`: the exit code, or 128+N and N when killed by
    signal N."""
    return ExitStatus(*procs.exit_status(wait_status))


def run_plan_command(plan: Plan, command: str, arguments: list[str]) -> ExitStatus:
    """Run the command's method; map its outcome to an exit status as ``python`` would. An
    uncaught ``KeyboardInterrupt`` is a death by SIGINT: python prints the traceback and then
    kills itself with SIGINT, so that a shell running it in a loop stops too."""
    try:
        run_after_fork(plan)
        result = getattr(plan, method_name(command))(arguments)
    except SystemExit as exc:
        return ExitStatus(exit_status(exc.code))
    except KeyboardInterrupt as exc:
        _print_user_traceback(exc)
        return ExitStatus(128 + signal.SIGINT, signal.SIGINT)
    except BaseException as exc:
        _print_user_traceback(exc)
        return ExitStatus(1)
    return ExitStatus(exit_status(result))


#: Frames from files in here lead into the user's code; a traceback starts after them.
_ZEUSPY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as ``python`` would print it, through ``sys.excepthook``: without zeuspy's
    leading frames, and none at all for a ``SyntaxError`` in the user's program (zeuspy's frames
    are kept only when the error is in zeuspy itself)."""
    tb = exc.__traceback__
    first = tb.tb_next if tb is not None else None
    user = first
    while user is not None and user.tb_frame.f_code.co_filename.startswith(_ZEUSPY_DIR):
        user = user.tb_next
    if user is None and isinstance(exc, SyntaxError):
        first = None  # compiling the program failed: python shows no traceback for that
    shown = user if user is not None else first
    # excepthook prints the exception's own traceback: give it the trimmed one.
    sys.excepthook(type(exc), exc.with_traceback(shown), shown)
