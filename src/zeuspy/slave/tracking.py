"""Which files a phase loaded ("features"): module sources, traceback files, explicit tracks.

Paths are reported as real paths, one per line, on the phase's feature pipe (docs/protocol.md).
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib.util import source_from_cache
from types import ModuleType, TracebackType

from zeuspy.plan import take_tracked


def module_file(module: ModuleType) -> str | None:
    """The source file of ``module`` (a ``.pyc`` mapped back to its ``.py``), or None."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return None
    if path.endswith(".pyc"):
        try:
            path = source_from_cache(path)
        except ValueError:
            pass
    return os.path.realpath(path)


def modules_since(before: set[str]) -> list[str]:
    """Source files of the modules imported since ``before`` (a snapshot of ``sys.modules``)."""
    files = []
    for name in list(sys.modules):
        if name in before:
            continue
        module = sys.modules.get(name)
        path = module_file(module) if module is not None else None
        if path:
            files.append(path)
    return files


def traceback_files(exc: BaseException) -> list[str]:
    """Files named by ``exc``'s traceback and, for a SyntaxError, the file that failed to parse,
    so that fixing the error brings the phase back."""
    files: list[str] = []
    tb: TracebackType | None = exc.__traceback__
    for frame in traceback.extract_tb(tb):
        if frame.filename and not frame.filename.startswith("<"):
            files.append(os.path.realpath(frame.filename))
    if isinstance(exc, SyntaxError) and exc.filename and not exc.filename.startswith("<"):
        files.append(os.path.realpath(exc.filename))
    return files


class FeatureReporter:
    """Writes loaded files on the feature pipe, each path once."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._sent: set[str] = set()

    def report(self, files: list[str]) -> None:
        fresh = [f for f in dict.fromkeys(files + take_tracked()) if f not in self._sent]
        if not fresh:
            return
        self._sent.update(fresh)
        data = ("\n".join(fresh) + "\n").encode("utf-8", "surrogateescape")
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass  # the master is gone; the socket EOF ends this process soon

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
