"""Asking the running master something over its socket (``Q:status|restart|stop``)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from zeuspy import paths
from zeuspy.protocol import wire

#: How long to wait for the master's answer.
QUERY_TIMEOUT = 5.0


class NoMaster(Exception):
    """No master answers for this project."""


def project_root(config: str | None) -> Path:
    """The project whose master to ask: the folder of ``config``, else the one a client finds
    from here (:func:`zeuspy.paths.master_root`)."""
    if config:
        return Path(config).absolute().parent
    return Path(os.fsdecode(paths.master_root()))


def socket_for(root: Path) -> str:
    return os.fsdecode(paths.socket_path(os.fsencode(root)))


def ask(root: Path, question: str) -> dict[str, Any]:
    """The master's JSON answer to ``question``; :class:`NoMaster` if none is listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(QUERY_TIMEOUT)
    try:
        try:
            sock.connect(socket_for(root))
        except OSError as exc:
            raise NoMaster(str(exc)) from None
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
    except (OSError, ValueError) as exc:
        raise NoMaster(str(exc)) from None
    finally:
        sock.close()
