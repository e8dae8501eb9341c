"""Asking the running master something over its socket (``Q:status|restart|stop``), and naming
a master that does not answer: stopped (^Z, SIGSTOP) or wedged, rather than "not running"."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from zeuspy import masterstate, paths, procs
from zeuspy.errors import ZeusError
from zeuspy.protocol import wire

#: How long to wait for the master's answer.
QUERY_TIMEOUT = 5.0


#: Exit status of ``zeus status`` and ``zeus restart`` when a master process runs (or is
#: stopped) but does not answer (docs/status.md).
EXIT_NO_ANSWER = 5


class NoMaster(Exception):
    """No master answers for this project."""


class NoAnswer(NoMaster):
    """Something accepted the question but gave no answer within :data:`QUERY_TIMEOUT`."""


def project_root(config: str | None) -> Path:
    """The project whose master to ask: the folder of ``config``, else the one a client finds
    from here (:func:`zeuspy.paths.master_root`)."""
    if config:
        return Path(config).absolute().parent
    return Path(os.fsdecode(paths.master_root()))


def socket_for(root: Path) -> str:
    return os.fsdecode(paths.socket_path(os.fsencode(root)))


class Untrusted(ZeusError):
    """The socket's folder, or the process listening on it, is not this user's: nothing is
    asked (its answer would be someone else's word), as the client refuses to run a command."""


def ask(root: Path, question: str) -> dict[str, Any]:
    """The master's JSON answer to ``question``; :class:`NoMaster` if none is listening,
    :class:`Untrusted` when the socket is not the user's own (the client's checks: paths.py)."""
    path = paths.socket_path(os.fsencode(root))
    problem = paths.socket_folder_problem(path)
    if problem is not None:
        raise Untrusted(problem)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(QUERY_TIMEOUT)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise NoMaster(str(exc)) from None
        _, problem = paths.peer_problem(sock, path)
        if problem is not None:
            raise Untrusted(problem)
        wire.send_message(sock, f"Q:{question}")
        reader = wire.FrameReader()
        while True:
            data, fds = wire.receive(sock)
            wire.close_fds(fds)
            reader.feed(data)
            messages = reader.messages()
            if messages:
                answer = json.loads(messages[0])
                if not isinstance(answer, dict):
                    raise NoMaster("unexpected answer")
                return answer
            if reader.eof:
                raise NoMaster("the master closed the connection without answering")
    except TimeoutError:
        raise NoAnswer(f"no answer within {QUERY_TIMEOUT:g} s") from None
    except (OSError, ValueError) as exc:
        raise NoMaster(str(exc)) from None
    finally:
        sock.close()


class Unresponsive:
    """A master process that lives (running or stopped) but did not, or cannot, answer."""

    def __init__(self, state: masterstate.MasterState, reason: str, detail: str) -> None:
        self.state = state
        self.pid = state.pid or 0
        #: ``stopped``, ``no answer`` (a running master silent for QUERY_TIMEOUT), or
        #: ``not listening`` (its socket refused the connection, or closed it unanswered).
        self.reason = reason
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "reason": self.reason}

    def message(self) -> str:
        """One line for the user: what the master is doing, and what to do about it."""
        if self.reason == "stopped":
            return f"zeus: {self.state.describe()}, so it cannot answer; {self.state.advice()}"
        if self.reason == "no answer":
            what = f"runs but did not answer within {QUERY_TIMEOUT:g} s"
        else:
            what = f"runs but does not answer on its socket ({self.detail})"
        return f"zeus: the master (pid {self.pid}) {what}; {self.state.advice()}"


def stopped_master(root: Path) -> Unresponsive | None:
    """The project's master when it is stopped (^Z, SIGSTOP): asking it would only time out."""
    state = masterstate.master_state(os.fsencode(root))
    if state.state == procs.STOPPED:
        return Unresponsive(state, "stopped", "")
    return None


def unresponsive(root: Path, failure: NoMaster) -> Unresponsive | None:
    """Why ``failure`` (from :func:`ask`) happened when a master process still lives: it is
    stopped, silent, or not listening; None when no master runs (none, gone, a zombie)."""
    state = masterstate.master_state(os.fsencode(root))
    if state.state == procs.STOPPED:
        return Unresponsive(state, "stopped", "")
    if state.state != procs.RUNNING:
        return None
    reason = "no answer" if isinstance(failure, NoAnswer) else "not listening"
    return Unresponsive(state, reason, str(failure))
