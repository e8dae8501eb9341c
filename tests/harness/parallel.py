"""Which tests `make test` keeps out of its parallel pass, and why.

`make test` runs the suite in two passes (see the Makefile): first every test not marked
``serial`` on pytest-xdist workers, a whole file per worker (``--dist loadfile``: a module's
fixtures, such as the differential suite's one master per module, are built once, on the worker
that runs the file); then the ``serial`` tests alone, one at a time. A test is serial when
another test running beside it could make it fail without a bug: it measures how long something
takes, or how much CPU, memory or fds a master uses, or waits inside a window (a debounce, a
grace period) that load stretches; or it uses something the machine has once (a folder every
master of the user shares, the other user's uid).

:data:`SERIAL` names them, by file (every test in it) or by test; :func:`mark` marks them for
``-m serial`` / ``-m "not serial"``. tests/unit/test_serial_table.py checks that every name in it
still exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MARKER = ("serial: kept out of make test's parallel pass (timing, load-sensitive windows or a "
          "resource the machine has once); see tests/harness/parallel.py")

#: A path relative to the repository (a folder ending in "/", or a file), or a test's node id
#: without parameters -> why it runs alone.
SERIAL: dict[str, str] = {
    "stress/": "figures of a master under its own load: latencies, CPU, RSS, fd counts",
    "tests/e2e/test_bounds.py": "a master's CPU and RSS under floods, fd exhaustion and back-off",
    "tests/e2e/test_liveness.py": "how fast a stopped or wedged master is named or stopped",
    "tests/e2e/test_reload.py": "bursts of writes that must land within the file-change delay",
    "tests/e2e/test_trust.py": ("/tmp/zeuspy-UID is every master's fallback folder, changed here; "
                                "times the client's waits on wedged masters"),
    "tests/e2e/test_background.py::test_detach_then_stop": "detaching within DETACH_TIMEOUT",
    "tests/e2e/test_background.py::test_idle_timeout_stops_a_detached_master":
        "idle timeout measured in seconds",
    "tests/e2e/test_background.py::test_idle_timeout_counts_from_the_end_of_the_last_command":
        "idle timeout measured in seconds",
    "tests/e2e/test_client_pipe.py::test_command_of_booting_phase_waits_then_runs":
        "times the command's start after the boot",
    "tests/e2e/test_client_pipe.py::test_master_killed_mid_command_client_exits":
        "times the client's exit after the master's death",
    "tests/e2e/test_client_pipe.py::test_sigkilled_client_takes_its_command_down":
        "times the command's end after its client's",
    "tests/e2e/test_client_pipe.py::test_sigterm_to_client_kills_default_command":
        "times the command's end after SIGTERM",
    "tests/e2e/test_client_pty.py::test_master_killed_mid_command_in_a_pty":
        "times the client's exit after the master's death",
    "tests/e2e/test_client_pty.py::test_sigkilled_client_takes_its_command_down":
        "times the command's end after its client's",
    "tests/e2e/test_client_pty.py::test_terminal_restored_when_client_is_signalled":
        "times the client's exit after a signal",
    "tests/e2e/test_master.py::test_master_sigkilled_phases_exit_within_2s":
        "phases must exit within 2 s of the master's death",
    "tests/e2e/test_master.py::test_stop_with_a_command_running_leaves_nothing":
        "times the stop",
    "tests/e2e/test_protocol.py::test_idle_connections_do_not_block_others":
        "a real client beside idle ones within 3 s",
    "tests/e2e/test_protocol.py::test_legacy_shim_restart_and_master_death":
        "times the client's exit after the master's death",
    "tests/unit/test_watchers.py::test_stop_returns_promptly": "times a watcher's stop",
    "tests/unit/test_watchers.py::test_stop_right_after_start": "times a watcher's stop",
    "tests/unit/test_watchers.py::test_ten_thousand_files_in_500_folders":
        "times a scan of 10,000 files",
}

REPOSITORY = Path(__file__).resolve().parents[2]


def configure(config: pytest.Config) -> None:
    """Declare the ``serial`` marker (from each suite's pytest_configure), and keep this
    process's environment readable in ``/proc/self/environ``: a pytest-xdist worker sets its
    title with setproctitle before each test, which without ``SPT_NOENV`` moves the environment
    and blanks that file (a test that reads it, as the shim reads a client's, would see nothing).
    """
    config.addinivalue_line("markers", MARKER)
    os.environ.setdefault("SPT_NOENV", "1")


def is_serial(nodeid: str) -> bool:
    """Whether the test ``nodeid`` (relative to the repository, parameters allowed) is named by
    :data:`SERIAL`, itself or through its file or folder."""
    test = nodeid.split("[", 1)[0]
    path = test.split("::", 1)[0]
    return test in SERIAL or any(path == key or (key.endswith("/") and path.startswith(key))
                                 for key in SERIAL)


def mark(items: list[pytest.Item]) -> None:
    """Mark ``serial`` every collected test :data:`SERIAL` names (from each suite's
    pytest_collection_modifyitems)."""
    for item in items:
        try:
            nodeid = item.path.relative_to(REPOSITORY).as_posix()
        except ValueError:
            continue  # not one of the repository's tests
        if "::" in item.nodeid:
            nodeid += "::" + item.nodeid.split("::", 1)[1]
        if is_serial(nodeid):
            item.add_marker(pytest.mark.serial)
