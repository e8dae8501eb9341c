"""The reloader of ``zeus runserver`` (plans/django_reloader.py) with a stand-in for the client:
it starts the client again while it ends with status 3, ends with the client's status otherwise,
marks the clients' environment, and passes the signals it gets to the client once. Run in a
child interpreter (it installs signal handlers); every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from zeuspy.plans import django_reloader

#: The stand-in client: counts its runs in a file, exits 3 (a reload) until run ``RELOADS``
#: times, then ends as ``FINAL`` says: a status, or waiting for a signal and reporting it.
CLIENT = """
import os, signal, sys, time
count_file, reloads, final = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(count_file, "a") as f:
    f.write(os.environ.get("ZEUSPY_RUNSERVER_RELOADER", "-") + "\\n")
runs = len(open(count_file).read().split())
if runs <= reloads:
    sys.exit(3)
if final == "wait":
    got = []
    signal.signal(signal.SIGTERM, lambda n, f: got.append(n))
    print("waiting", flush=True)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # a second copy of the signal would arrive meanwhile
    print("signals", len(got), flush=True)
    sys.exit(0 if got else 9)
if final == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(int(final))
"""
RUNNER = """
import sys
from zeuspy.plans import django_reloader
client, count_file, reloads, final = sys.argv[1:5]
django_reloader.client_command = lambda argv: [sys.executable, client, *argv]
sys.exit(django_reloader.reload_loop([count_file, reloads, final]))
"""
TIMEOUT = 20.0


def reloader(tmp_path: Path, reloads: int, final: str) -> subprocess.Popen[str]:
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(CLIENT))
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(client), str(tmp_path / "runs"),
                             str(reloads), final], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs").read_text().split()


def test_runs_the_client_again_while_it_reloads(tmp_path: Path) -> None:
    proc = reloader(tmp_path, 3, "7")
    assert proc.wait(TIMEOUT) == 7
    assert runs(tmp_path) == ["1"] * 4  # three reloads, then the last run; each one marked


def test_a_client_killed_by_a_signal_is_128_plus_it(tmp_path: Path) -> None:
    proc = reloader(tmp_path, 1, "killed")
    assert proc.wait(TIMEOUT) == 128 + signal.SIGKILL
    assert len(runs(tmp_path)) == 2


def test_a_signal_reaches_the_client_once(tmp_path: Path) -> None:
    proc = reloader(tmp_path, 1, "wait")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "waiting\n"
        # To the reloader's process group, as a terminal or the master's teardown would: the
        # client is a job of its own, so only the reloader's copy, passed on, reaches it.
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    assert out == "signals 1\n"
    assert proc.returncode == 0


def test_client_command_is_the_launcher_beside_the_interpreter() -> None:
    command = django_reloader.client_command(["127.0.0.1:8000"])
    assert command[-2:] == ["runserver", "127.0.0.1:8000"]
    launcher = os.path.join(os.path.dirname(sys.executable), "zeus")
    assert command[0] == (launcher if os.access(launcher, os.X_OK) else sys.executable)
