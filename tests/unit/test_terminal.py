"""The client's raw mode, as cfmakeraw(3) makes it."""

from __future__ import annotations

import os
import termios

import pytest

from zeuspy.client import terminal


@pytest.fixture
def pty_attrs() -> list:  # type: ignore[type-arg]
    master, slave = os.openpty()
    try:
        return termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_raw_attributes_clear_what_cfmakeraw_clears(pty_attrs: list) -> None:  # type: ignore[type-arg]
    raw = terminal.raw_attributes(pty_attrs)
    iflag, oflag, cflag, lflag = raw[0], raw[1], raw[2], raw[3]
    for flag in (termios.IGNBRK, termios.BRKINT, termios.PARMRK, termios.ISTRIP, termios.INLCR,
                 termios.IGNCR, termios.ICRNL, termios.IXON):
        assert not iflag & flag
    assert not oflag & termios.OPOST
    for flag in (termios.ECHO, termios.ECHONL, termios.ICANON, termios.ISIG, termios.IEXTEN):
        assert not lflag & flag
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & termios.PARENB
    assert raw[6][termios.VMIN] == 1
    assert raw[6][termios.VTIME] == 0
    assert raw[4:6] == pty_attrs[4:6]  # speeds untouched


def test_raw_attributes_keep_unrelated_flags_and_do_not_mutate(pty_attrs: list  # type: ignore[type-arg]
                                                              ) -> None:
    attrs = list(pty_attrs)
    attrs[0] |= termios.IUTF8 if hasattr(termios, "IUTF8") else 0
    attrs[3] |= termios.ECHOE
    before = [list(a) if isinstance(a, list) else a for a in attrs]
    raw = terminal.raw_attributes(attrs)
    assert attrs == before
    assert raw[3] & termios.ECHOE
    assert raw[6][termios.VINTR] == attrs[6][termios.VINTR]


def test_raw_attributes_are_accepted_by_a_real_pty() -> None:
    master, slave = os.openpty()
    try:
        raw = terminal.raw_attributes(termios.tcgetattr(slave))
        termios.tcsetattr(slave, termios.TCSANOW, raw)
        now = termios.tcgetattr(slave)
        assert now[:6] == raw[:6]
        os.write(master, b"a\rb\x03\n")
        assert os.read(slave, 100) == b"a\rb\x03\n"  # no ICRNL, no ISIG, no line editing
    finally:
        os.close(master)
        os.close(slave)
