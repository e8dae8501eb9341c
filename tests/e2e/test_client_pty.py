"""The client on a terminal (pexpect PTYs): tty hand-over, window size, raw input, signal keys,
job control, terminal restoration and the client's own death."""

from __future__ import annotations

import json
import re
import signal
import termios
import time
from collections.abc import Iterator

import pexpect
import pytest

from tests.harness.clients import client_master, client_pid_under, suspend_and_resume
from tests.harness.plans import BIG_BYTES, COLOR_BYTES
from tests.harness.processes import check_no_leftovers, is_dead, kill_quietly
from tests.harness.project import ZEUS, Project
from tests.harness.terminal import ANSI, exit_code, finish, spawn, spawn_sh
from tests.harness.waits import wait_for

#: See ready_pid.
SETTLE = 0.2


@pytest.fixture(autouse=True)
def no_leftovers(project: Project) -> Iterator[None]:
    yield
    check_no_leftovers(project.root)


def ready_pid(child: pexpect.spawn, word: bytes = b"ready") -> int:
    """The pid the command printed once it is ready. Waits a moment more: the command's output
    can reach the client before the master's pid message does, and a signal key or signal before
    that makes the client leave without the command (test_client_pipe.py has a test for it)."""
    child.expect(word + rb" (\d+)\r\n", timeout=10)
    time.sleep(SETTLE)
    return int(child.match.group(1))


def stty_sections(output: bytes) -> list[bytes]:
    parts = output.split(b"===\r\n")
    assert len(parts) == 3, output
    return parts


def is_raw(fd: int) -> bool:
    lflag = termios.tcgetattr(fd)[3]
    return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)


# -- output, statuses, terminals ------------------------------------------------------------------

def test_pty_output_and_statuses(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "hello", "world")
        assert finish(child) == b"hello world\r\n"
        assert exit_code(child) == 0

        child = spawn(project, "exit_with", "7")
        finish(child)
        assert exit_code(child) == 7

        child = spawn(project, "exit_text", "oops")
        assert finish(child) == b"fatal: oops\r\n"
        assert exit_code(child) == 1

        child = spawn(project, "boom", "pty")
        out = ANSI.sub(b"", finish(child))  # Python 3.13 colours tracebacks on a terminal
        assert b"Traceback (most recent call last):" in out
        assert out.endswith(b"ValueError: kaboom pty\r\n"), out
        assert exit_code(child) == 1

        child = spawn(project, "suicide", "9")
        assert finish(child) == b"dying\r\n"
        assert exit_code(child) == 137


def test_pty_arguments(project: Project) -> None:
    args = ["a b", "", "héllo ✓", "-x", "--", "l1\nl2", ""]
    with client_master(project):
        child = spawn(project, "args_json", *args)
        out = finish(child)
        assert exit_code(child) == 0
        assert json.loads(out)["argv"] == args


def test_command_sees_a_terminal_on_0_1_2(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "ttys")
        assert finish(child) == b"TTYS [true, true, true]\r\n"
        assert exit_code(child) == 0


def test_window_size_is_mirrored(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "winsize", dimensions=(37, 111))
        assert finish(child) == b"SIZE=111x37\r\n"
        child = spawn(project, "winsize", dimensions=(5, 300))
        assert finish(child) == b"SIZE=300x5\r\n"


def test_sigwinch_is_forwarded_with_the_new_size(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "winch", dimensions=(24, 80))
        ready_pid(child)
        child.setwinsize(50, 132)
        child.expect_exact(b"WINCH=132x50\r\n", timeout=5)
        finish(child)
        assert exit_code(child) == 0


def test_raw_mode_input_reaches_input(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "ask")
        child.expect_exact(b"name? ")
        child.sendline("Ada Lovelace")
        child.expect_exact(b"got 'Ada Lovelace'\r\n")
        finish(child)
        assert exit_code(child) == 0


def test_stdin_eof_from_the_terminal(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "lines")
        time.sleep(0.2)
        child.sendline("one")
        child.sendline("two words")
        child.sendeof()
        child.expect_exact(b'LINES ["one", "two words"]\r\n')
        finish(child)
        assert exit_code(child) == 2


def test_escape_bytes_pass_through_untouched(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "colors")
        assert finish(child) == COLOR_BYTES
        assert exit_code(child) == 0


def test_big_output_is_drained_before_exit(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "big")
        child.maxread = 65536
        out = finish(child, timeout=15)
        assert exit_code(child) == 0
        assert len(out) == len(BIG_BYTES)
        assert out == BIG_BYTES


def test_no_tty_option_refuses_a_terminal(project: Project) -> None:
    with client_master(project):
        for option in ("-T", "--no-tty"):
            child = spawn(project, option, "ttys")
            assert b"TTYS [false, false, false]" in finish(child)
            assert exit_code(child) == 0


def test_no_tty_option_passes_terminal_eof(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "-T", "lines")
        try:
            time.sleep(0.2)
            child.sendline("one")
            child.sendeof()
            child.expect_exact(b'LINES ["one"]', timeout=3)
            finish(child)
            assert exit_code(child) == 1
        finally:
            if child.isalive():
                child.kill(signal.SIGKILL)
                child.close(force=True)


# -- signal keys ----------------------------------------------------------------------------------

def test_ctrl_c_is_keyboard_interrupt_in_the_command(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "interrupt")
        ready_pid(child)
        child.sendcontrol("c")
        child.expect_exact(b"caught ^C\r\n")
        finish(child)
        assert exit_code(child) == 42


def test_ctrl_c_unhandled_gives_130(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "sleep", "30")
        pid = ready_pid(child, b"sleeping")
        child.sendcontrol("c")
        out = finish(child, timeout=5)
        assert b"KeyboardInterrupt" in out
        assert exit_code(child) == 130
        assert is_dead(pid)


def test_ctrl_backslash_is_sigquit(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "sleep", "30")
        pid = ready_pid(child, b"sleeping")
        child.sendcontrol("\\")
        finish(child, timeout=5)
        assert exit_code(child) == 131
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to die")


def test_ctrl_z_stops_command_and_client_fg_resumes(project: Project) -> None:
    env = project.env(PS1="ZP> ", TERM="dumb")
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "--noediting", "-i"],
                          cwd=str(project.root), env=env, timeout=10, dimensions=(24, 80))
    try:
        with client_master(project):
            shell.expect_exact(b"ZP> ")
            shell.sendline(f"{ZEUS} resume")
            pid = ready_pid(shell, b"pid")
            client = client_pid_under(shell.pid)
            suspend_and_resume(shell, pid, client)
    finally:
        shell.close(force=True)


# -- terminal restoration ------------------------------------------------------------------------

STTY_SCRIPT = f"stty -a; echo ===; {ZEUS} %s; echo rc=$?; echo ===; stty -a"


def test_terminal_settings_identical_after_a_run(project: Project) -> None:
    with client_master(project):
        child = spawn_sh(project, STTY_SCRIPT % "hello there")
        out = finish(child)
        before, middle, after = stty_sections(out)
        assert b"hello there\r\n" in middle
        assert b"rc=0" in middle
        assert b"icanon" in before and b"-icanon" not in before  # a cooked terminal to start with
        assert before == after


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_terminal_restored_when_client_is_signalled(project: Project, signum: int) -> None:
    with client_master(project):
        child = spawn_sh(project, STTY_SCRIPT % "sleep 30")
        child.expect_exact(b"===\r\n")
        before = child.before
        pid = ready_pid(child, b"sleeping")
        client = client_pid_under(child.pid)
        assert is_raw(child.child_fd)  # the client did change the terminal
        start = time.monotonic()
        kill_quietly(client, signum)
        middle, after = finish(child, timeout=5).split(b"===\r\n")
        elapsed = time.monotonic() - start
        assert before == after
        rc = re.search(rb"rc=(\d+)", middle)
        assert rc is not None and rc.group(1) == str(128 + signum).encode()
        assert elapsed < 2.5
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to die")


def test_sigterm_to_client_reaches_the_command_in_a_pty(project: Project) -> None:
    with client_master(project):
        child = spawn(project, "term")
        pid = ready_pid(child)
        child.kill(signal.SIGTERM)
        out = finish(child, timeout=5)
        assert b"got TERM" in out
        assert exit_code(child) == 7
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to finish")


@pytest.mark.parametrize("command", ["sleep", "stubborn"])
def test_sigkilled_client_takes_its_command_down(project: Project, command: str) -> None:
    with client_master(project):
        child = spawn(project, command, "30")
        try:
            pid = ready_pid(child, b"sleeping")
            start = time.monotonic()
            child.kill(signal.SIGKILL)
            wait_for(lambda: is_dead(pid), timeout=3, interval=0.01, what="the command to die")
            elapsed = time.monotonic() - start
        finally:
            child.close(force=True)
        assert elapsed < 1.5, f"command outlived its client by {elapsed:.2f} s"


def test_master_killed_mid_command_in_a_pty(project: Project) -> None:
    pid = 0
    with client_master(project) as master:
        child = spawn_sh(project, STTY_SCRIPT % "sleep 30")
        try:
            child.expect_exact(b"===\r\n")
            before = child.before
            pid = ready_pid(child, b"sleeping")
            start = time.monotonic()
            master.proc.kill()
            child.expect_exact(b"===\r\n", timeout=4)  # the second one: the client has exited
            elapsed = time.monotonic() - start
            out = child.before
            rest = finish(child, timeout=5)
        finally:
            if pid:
                kill_quietly(pid)
            child.close(force=True)
        assert elapsed < 3.0
        assert b"master" in out
        rc = re.search(rb"rc=(\d+)", out)
        assert rc is not None and rc.group(1) != b"0"
        assert rest == before
