"""``zeus`` (or a shell) on a fresh PTY with pexpect, in bytes mode; every expect is bounded."""

from __future__ import annotations

import re

import pexpect

from tests.harness.project import RUN_TIMEOUT, ZEUS, Project

#: A terminal's colour and cursor sequences (CSI), to compare output without them.
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def spawn(project: Project, *args: str, cwd: str = "", timeout: float = RUN_TIMEOUT,
          dimensions: tuple[int, int] = (24, 80), **env: str) -> pexpect.spawn:
    """``zeus ARGS`` on a fresh PTY of ``dimensions`` (rows, columns), in ``cwd`` (relative to
    the project's root), with ``env`` added to the project's environment; expects time out after
    ``timeout`` seconds."""
    return pexpect.spawn(ZEUS, list(args), cwd=str(project.root / cwd), env=project.env(**env),
                         timeout=timeout, dimensions=dimensions)


def spawn_sh(project: Project, script: str, timeout: float = RUN_TIMEOUT) -> pexpect.spawn:
    """``sh -c SCRIPT`` on a fresh 24x80 PTY in the project's root, with its environment."""
    return pexpect.spawn("sh", ["-c", script], cwd=str(project.root), env=project.env(),
                         timeout=timeout, dimensions=(24, 80))


def finish(child: pexpect.spawn, timeout: float = RUN_TIMEOUT) -> bytes:
    """Everything the child still writes until EOF (bounded by ``timeout``); the child is closed
    after, so :func:`exit_code` can read its status."""
    child.expect(pexpect.EOF, timeout=timeout)
    out: bytes = child.before
    child.close()
    return out


def exit_code(child: pexpect.spawn) -> int:
    """A closed child's exit status as a shell shows it: 128+N when killed by signal N."""
    if child.signalstatus is not None:
        return 128 + int(child.signalstatus)
    return int(child.exitstatus)
