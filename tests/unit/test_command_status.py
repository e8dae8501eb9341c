"""The runner's helpers: exit statuses, wait statuses of real children, argument reading."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest

from zeuspy.protocol.messages import ExitStatus, parse_exit_status
from zeuspy.protocol.wire import ProtocolError
from zeuspy.shim import command, outcome, runner


# -- exit_status ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "status"), [
    (None, 0), (0, 0), (1, 1), (7, 7), (255, 255), (256, 0), (257, 1), (-1, 255), (-256, 0),
    (True, 1), (False, 0),
])
def test_exit_status_of_numbers(code: object, status: int, capsys: pytest.CaptureFixture[str]
                                ) -> None:
    assert outcome.exit_status(code) == status
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("code", "printed"), [
    ("failed: no such user", "failed: no such user\n"),
    ("", "\n"),
    (["a", 1], "['a', 1]\n"),
    (2.5, "2.5\n"),
])
def test_exit_status_of_other_values_prints_them(code: object, printed: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert outcome.exit_status(code) == 1
    captured = capsys.readouterr()
    assert captured.err == printed
    assert captured.out == ""


def test_exit_status_matches_the_interpreter() -> None:
    # What `python -c 'raise SystemExit(x)'` would exit with, for the numeric cases.
    for code in (0, 3, 256, 300, -1):
        assert outcome.exit_status(code) == code % 256


# -- status_from_wait with real children ----------------------------------------------------------
def child_status(action: str, value: int) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if action == "exit":
                os._exit(value)
            if value != signal.SIGKILL:
                signal.signal(value, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [value])
            os.kill(os.getpid(), value)
            signal.pause()
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize("code", [0, 1, 2, 42, 127, 255])
def test_status_from_wait_exit_codes(code: int) -> None:
    assert outcome.status_from_wait(child_status("exit", code)) == code


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                    signal.SIGSEGV, signal.SIGABRT])
def test_status_from_wait_signals(signum: int) -> None:
    assert outcome.status_from_wait(child_status("signal", signum)) == 128 + signum


def _child(body: str) -> tuple[int, int]:
    """A forked child that reports on its status pipe (``reports``) or is killed (``killed``)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        if body == "reports":
            os.write(w, command.REPORTED)
            os._exit(7)
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(w)
    return pid, r


def test_wait_for_status_knows_a_command_reported_itself(no_fd_leak: object) -> None:
    pid, r = _child("reports")
    try:
        reported, wait_status = runner.wait_for_status(pid, r)
        assert reported
        assert outcome.exit_status_of(wait_status) == ExitStatus(7)
    finally:
        os.close(r)


def test_wait_for_status_falls_back_to_the_signal(no_fd_leak: object) -> None:
    pid, r = _child("killed")
    try:
        reported, wait_status = runner.wait_for_status(pid, r)
        assert not reported
        # Killed: 128+N for a shell, and the signal itself for a client that dies of it too.
        assert outcome.exit_status_of(wait_status) == ExitStatus(128 + signal.SIGKILL,
                                                                 signal.SIGKILL)
    finally:
        os.close(r)


# -- read_arguments -------------------------------------------------------------------------------
def args_fd(payload: bytes) -> int:
    """The reading end of an args socket whose writer sent ``payload`` and closed."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        ours.sendall(payload)
    return theirs.detach()


@pytest.mark.parametrize(("payload", "argc", "expected"), [
    (b"", 0, []),
    (b"\0", 1, [""]),
    (b"a\0", 1, ["a"]),
    (b"a\0b c\0", 2, ["a", "b c"]),
    (b"a\0\0", 2, ["a", ""]),
    (b"a\0\0\0", 3, ["a", "", ""]),
    (b"\0\0\0", 3, ["", "", ""]),
    (b"\0a\0", 2, ["", "a"]),
    ("héllo\0".encode(), 1, ["héllo"]),
    (b"no-terminator", 1, ["no-terminator"]),
])
def test_read_arguments(payload: bytes, argc: int, expected: list[str],
                        no_fd_leak: object) -> None:
    fd = args_fd(payload)
    assert command.read_arguments(fd, argc) == expected
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by read_arguments


def test_read_arguments_undecodable_bytes_round_trip(no_fd_leak: object) -> None:
    [arg] = command.read_arguments(args_fd(b"\xff\xfe\0"), 1)
    assert os.fsencode(arg) == b"\xff\xfe"


@pytest.mark.parametrize(("payload", "argc"), [
    (b"", 1), (b"a\0", 0), (b"a\0", 2), (b"a\0b\0", 1), (b"\0", 0), (b"\0\0", 1), (b"\0", 2),
])
def test_read_arguments_wrong_count(payload: bytes, argc: int, no_fd_leak: object) -> None:
    fd = args_fd(payload)
    with pytest.raises(ProtocolError, match=f"expected {argc} arguments"):
        command.read_arguments(fd, argc)
    with pytest.raises(OSError):
        os.fstat(fd)


def test_read_arguments_larger_than_the_socket_buffer(no_fd_leak: object) -> None:
    args = ["x" * 300_000, "", "y" * 100_000, ""]
    payload = b"".join(a.encode() + b"\0" for a in args)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def writer() -> None:
        with ours:
            ours.sendall(payload)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert command.read_arguments(theirs.detach(), len(args)) == args
    finally:
        thread.join(5)
    assert not thread.is_alive()


# -- the exit status message ----------------------------------------------------------------------
@pytest.mark.parametrize(("status", "with_signal", "text"), [
    (ExitStatus(0), True, "0"),
    (ExitStatus(130), True, "130"),  # sys.exit(130): a status, not a signal
    (ExitStatus(130, signal.SIGINT), True, "130:2"),
    (ExitStatus(130, signal.SIGINT), False, "130"),  # a legacy peer reads a number only
])
def test_exit_status_round_trip(status: ExitStatus, with_signal: bool, text: str) -> None:
    assert status.format(with_signal) == text
    parsed = parse_exit_status(text)
    assert parsed.status == status.status
    assert parsed.signal == (status.signal if with_signal else 0)


@pytest.mark.parametrize("text", ["", "x", "1:x", "1:", "999999999999999999999", ":2"])
def test_exit_status_refuses_garbage(text: str) -> None:
    if text == "1:":
        assert parse_exit_status(text) == ExitStatus(1)
        return
    with pytest.raises(ProtocolError):
        parse_exit_status(text)


def test_keyboard_interrupt_is_a_death_by_sigint(capsys: pytest.CaptureFixture[str]) -> None:
    import zeuspy

    class Plan(zeuspy.Plan):
        def interrupted(self, argv: list[str]) -> None:
            raise KeyboardInterrupt

    died = outcome.run_plan_command(Plan(), "interrupted", [])
    assert died == ExitStatus(128 + signal.SIGINT, signal.SIGINT)
    assert "KeyboardInterrupt" in capsys.readouterr().err
