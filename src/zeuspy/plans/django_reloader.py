"""The reloader of ``zeus runserver``: what the command becomes (exec) at its first reload.

Django's ``manage.py runserver`` is two processes: a reloader that starts the server again each
time it ends with status 3 (a watched file changed), and the server. Under zeus the first server
is the command itself (forked warm from the ``django`` phase); when it sees a change it execs
``python -I django_reloader.py ARGS``, which runs ``zeus runserver ARGS`` (a client: each server
then forks from the phases rebooted for the change) as long as those end with status 3. Those
servers, told by :data:`RELOADER_ENV`, end with status 3 instead of becoming reloaders
themselves: however many saves, one reloader, one client of its own and one server remain
(before, each reload left a runner and a client waiting on the next one).

Run as a script, it imports the standard library only (and setproctitle): not zeuspy's plans,
whose imports cost 60 ms here, nor Django.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

#: The status Django's reloader ends its serving process with when a watched file changed.
RELOAD_STATUS = 3
#: Set (to "1") in the environment of the clients the reloader starts: their server ends with
#: :data:`RELOAD_STATUS` on a change, and the reloader asks for the next.
RELOADER_ENV = "ZEUSPY_RUNSERVER_RELOADER"
TITLE = "zeus reloader: runserver"
#: What the reloader passes on to its client (the client passes them on to the server). Not
#: SIGWINCH: the terminal sends it to the client's job itself.
FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1,
             signal.SIGUSR2)


def client_command(argv: list[str]) -> list[str]:
    """``zeus runserver ARGV``, with the launcher beside this interpreter when there is one."""
    launcher = os.path.join(os.path.dirname(sys.executable), "zeus")
    if os.access(launcher, os.X_OK):
        return [launcher, "runserver", *argv]
    return [sys.executable, "-m", "zeuspy", "runserver", *argv]


def foreground_terminal() -> int | None:
    """One of fds 0-2 that is our controlling terminal with our process group in its foreground
    (a server on the user's terminal), or None."""
    for fd in (0, 1, 2):
        try:
            if os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def _take_foreground(terminal: int) -> None:
    """Make our process group the terminal's foreground one (SIGTTOU is ignored: a background
    group may not change it otherwise)."""
    try:
        os.tcsetpgrp(terminal, os.getpgrp())
    except OSError:
        pass


def reload_loop(argv: list[str]) -> int:
    """Run ``zeus runserver ARGV`` again each time it ends with :data:`RELOAD_STATUS`; the exit
    status of the last one otherwise (as manage.py's reloader: 0 after ^C).

    Each client is a job of its own, in the terminal's foreground when we have one (as a shell
    runs a command), so that a signal sent to our group reaches it once: from us. Signals we get
    go to the client; one that comes between two clients ends the loop as it would end
    manage.py's reloader (SIGINT and SIGTERM: status 0)."""
    terminal = foreground_terminal()
    client: subprocess.Popen[bytes] | None = None
    stop: int | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        if client is not None and client.returncode is None:
            client.send_signal(signum)
        else:
            stop = signum

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)

    def own_job() -> None:  # in the client, before exec
        os.setpgid(0, 0)
        if terminal is not None:
            _take_foreground(terminal)
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    environ = {**os.environ, RELOADER_ENV: "1"}
    command = client_command(argv)
    while stop is None:
        # Held while the client starts: a signal then is for it, and it must know its pid.
        # (preexec_fn is safe here: the reloader has no other thread.)
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            client = subprocess.Popen(command, env=environ, preexec_fn=own_job)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        status = client.wait()
        if terminal is not None:
            _take_foreground(terminal)
        if status != RELOAD_STATUS:
            return status if status >= 0 else 128 - status
    if stop in (signal.SIGINT, signal.SIGTERM):
        return 0
    signal.signal(stop, signal.SIG_DFL)
    os.kill(os.getpid(), stop)
    return 128 + stop


def main() -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(TITLE)
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        pass
    sys.exit(reload_loop(sys.argv[1:]))


if __name__ == "__main__":
    main()
