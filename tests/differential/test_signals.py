"""Issue 10, item 3: dying like python.

When the command dies of a signal, the client dies of the same one, so a shell sees WIFSIGNALED:
dash reports ``Terminated``/``Killed``/...; ``exec`` makes the death the wrapper's own
(:attr:`Record.shell`); bash aborts a loop after ^C only when the child died of SIGINT. An
uncaught KeyboardInterrupt is a death by SIGINT; ``sys.exit(130)`` is an exit status. ^Z stops
the command and the client (``$?`` 148, as python) and the terminal shows ``^Z`` when it happens.
"""

from __future__ import annotations

import re
import signal

import pexpect
import pytest

from tests.differential.harness import PROMPT, interactive_bash, run_both
from tests.harness.project import PyProject

SUICIDE = """\
import os, signal, sys
print("dying", flush=True)
os.kill(os.getpid(), getattr(signal, sys.argv[1]))
"""
SLEEPER = """\
import sys, time
print("start", sys.argv[1], flush=True)
time.sleep(2)
print("end", sys.argv[1], flush=True)
"""
ASKER = """\
import sys
print("ready", flush=True)
line = input()
print("got", line, flush=True)
sys.exit(5)
"""
DISPOSITIONS = """\
import signal
for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
             "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGPIPE", "SIGCHLD"):
    handler = signal.getsignal(getattr(signal, name))
    print(name, getattr(handler, "name", None) or getattr(handler, "__name__", handler))
"""
PROJECT_FILES = {"suicide.py": SUICIDE, "sleeper.py": SLEEPER, "asker.py": ASKER,
                 "dispositions.py": DISPOSITIONS}

SIGNALS = ["SIGTERM", "SIGKILL", "SIGSEGV", "SIGABRT", "SIGHUP", "SIGUSR1", "SIGQUIT"]


@pytest.mark.parametrize("name", SIGNALS)
def test_a_command_that_kills_itself(zeus_project: PyProject, name: str) -> None:
    """The shell sees the same signal: ``$?``, ``kill -l``, and dash's report on stderr."""
    python, zeus = run_both(zeus_project, f"ulimit -c 0; $PY suicide.py {name}")
    assert (python.status, python.signal) == (128 + signal.Signals[name], name[3:]), python
    assert zeus == python


@pytest.mark.parametrize("name", ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1"])
def test_a_signal_the_shell_ignores_stays_ignored(zeus_project: PyProject, name: str) -> None:
    """``trap '' SIG`` (as ``nohup`` does for SIGHUP, and a shell without job control for a
    background job's SIGINT and SIGQUIT) starts the program with the signal ignored: python
    survives sending it to itself, and so does the command."""
    python, zeus = run_both(zeus_project, f"trap '' {name[3:]}; $PY suicide.py {name}")
    assert (python.status, python.stdout) == (0, b"dying\n"), python
    assert zeus == python


@pytest.mark.parametrize("ignored", ["", "HUP", "INT QUIT", "HUP INT QUIT TERM USR1 USR2 ALRM"])
def test_signal_dispositions_are_pythons(zeus_project: PyProject, ignored: str) -> None:
    """What ``signal.getsignal`` says of each signal, with the shell ignoring some or none."""
    trap = f"trap '' {ignored}; " if ignored else ""
    python, zeus = run_both(zeus_project, f"{trap}$PY dispositions.py")
    assert python.status == 0 and python.stdout.count(b"\n") == 12, python
    assert (b"SIGINT SIG_IGN" in python.stdout) == ("INT" in ignored.split()), python
    assert zeus == python


@pytest.mark.parametrize("name", ["SIGTERM", "SIGKILL", "SIGSEGV"])
def test_the_parent_sees_the_signal(zeus_project: PyProject, name: str) -> None:
    """With ``exec`` the shell is the command's parent: it dies of the same signal (WIFSIGNALED),
    not with an exit status 128+N."""
    python, zeus = run_both(zeus_project, f"ulimit -c 0; exec $PY suicide.py {name}")
    assert python.shell == f"signal {name}", python
    assert zeus == python


def test_uncaught_keyboard_interrupt_is_death_by_sigint(zeus_project: PyProject) -> None:
    python, zeus = run_both(zeus_project, "exec $PY -c 'raise KeyboardInterrupt'")
    assert python.shell == "signal SIGINT", python
    assert b"KeyboardInterrupt" in python.stderr
    assert zeus == python


def test_sys_exit_130_is_a_status_not_a_signal(zeus_project: PyProject) -> None:
    python, zeus = run_both(zeus_project, "exec $PY -c 'import sys; sys.exit(130)'")
    assert python.shell == "exit 130", python
    assert zeus == python


def _interrupt_first(child: pexpect.spawn) -> None:
    child.expect_exact(b"start a")
    child.send(b"\x03")


def test_ctrl_c_aborts_a_shell_loop(zeus_project: PyProject) -> None:
    """``for f in a b c; do python x.py $f; done`` in bash on a terminal: ^C (the byte \\x03)
    kills the command by SIGINT, so bash leaves the loop (and dies of SIGINT itself)."""
    snippet = "for f in a b c; do $PY sleeper.py $f; done; echo LOOP ENDED"
    python, zeus = run_both(zeus_project, snippet, pty=True, shell="/bin/bash",
                            interact=_interrupt_first, timeout=8.0)
    assert b"start b" not in python.stdout and b"LOOP ENDED" not in python.stdout, python
    assert b"KeyboardInterrupt" in python.stdout
    assert python.shell == "signal SIGINT", python
    assert zeus == python


@pytest.mark.parametrize(("key", "name"), [(b"\x03", "SIGINT"), (b"\x1c", "SIGQUIT")],
                         ids=["ctrl-c", "ctrl-backslash"])
def test_a_terminal_key_kills_like_python(zeus_project: PyProject, key: bytes,
                                          name: str) -> None:
    """The key's signal kills the command, and its parent sees that signal (``exec``), with the
    same echo and traceback on the terminal."""
    def press(child: pexpect.spawn) -> None:
        child.expect_exact(b"start a")
        child.send(key)

    python, zeus = run_both(zeus_project, "ulimit -c 0; exec $PY sleeper.py a", pty=True,
                            interact=press, timeout=8.0)
    assert python.shell == f"signal {name}", python
    assert b"end a" not in python.stdout
    assert zeus == python


def _events(transcript: bytes) -> list[str]:
    """The milestones of the ^Z scenario, in the order the terminal showed them."""
    marks = [(rb"ready", "ready"), (rb"\^Z", "^Z echo"), (rb"Stopped", "Stopped"),
             (rb"rc=\d+", None), (rb"got again", "got again")]
    found = []
    for pattern, label in marks:
        for match in re.finditer(pattern, transcript):
            found.append((match.start(), label or match[0].decode()))
    return [label for _, label in sorted(found)]


def _suspend_and_resume(zeus_project: PyProject, side: str) -> list[str]:
    with interactive_bash(zeus_project, side, timeout=8.0) as (shell, seen):
        shell.sendline("$PY asker.py")
        shell.expect_exact(b"ready")
        shell.send(b"\x1a")
        shell.expect_exact(b"Stopped")
        shell.expect_exact(PROMPT)
        shell.sendline("echo rc=$?")
        shell.expect(rb"rc=\d+")
        shell.expect_exact(PROMPT)
        shell.sendline("fg")
        shell.expect_exact(b"asker.py")
        shell.sendline("again")
        shell.expect_exact(b"got again")
        shell.expect_exact(PROMPT)
        shell.sendline("echo rc=$?")
        shell.expect(rb"rc=\d+")
        shell.expect_exact(PROMPT)
        return _events(seen.getvalue())


def test_ctrl_z_stops_and_fg_resumes(zeus_project: PyProject) -> None:
    """^Z in bash: the ``^Z`` echo when it happens (before bash's ``Stopped``), ``$?`` 148
    (SIGTSTP), ``fg`` resumes, the command reads its line and exits 5."""
    python = _suspend_and_resume(zeus_project, "python")
    assert python == ["ready", "^Z echo", "Stopped", "rc=148", "got again", "rc=5"], python
    zeus = _suspend_and_resume(zeus_project, "zeus")
    assert zeus == python
