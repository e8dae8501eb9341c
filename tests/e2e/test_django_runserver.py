"""``zeus runserver`` across reloads, end to end, on a real Django project (the one
test_django_plan.py generates): whatever the number of saves, exactly one server process tree
stays (the user's client, one command serving, and from the first reload one reloader that asks
the master for the next server), and ^C, on a terminal or as a signal, ends all of it with the
status manage.py gives (0).

Each save is made once the running server's Django reloader has had its first look at the file
(it polls every second), and the next only once the server serves the saved text.
"""

from __future__ import annotations

import io
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from tests.e2e.test_django_plan import (
    DjangoProject,
    fetch,
    free_port,
    migrate,
    new_site,
    port_open,
    site_master,
)
from tests.harness.master import Master
from tests.harness.processes import processes_in
from tests.harness.project import ZEUS
from tests.harness.terminal import exit_code
from tests.harness.waits import wait_for

#: A save seen by the server's reloader (1 s polls), the phases rebooted, the server back.
RELOAD_TIMEOUT = 30.0
#: Django's reloader records a file's first modification time on its first tick (1 s).
RELOADER_FIRST_LOOK = 1.5
SERVER_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
#: Saves per test: enough that one process left per reload would show (2 per save before the
#: fix: a runner or guard pair, and a client).
SAVES = 4
VIEW = """\
from django.http import HttpResponse

GREETING = {greeting!r}


def index(request):
    return HttpResponse(GREETING)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoProject]:
    yield from new_site(tmp_path_factory, "django-runserver")


@pytest.fixture(scope="module")
def master(site: DjangoProject) -> Iterator[Master]:
    yield from site_master(site, then=migrate)


def server_tree(site: DjangoProject) -> list[tuple[int, str]]:
    """The processes of a running ``zeus runserver``: clients, reloader, runners, commands and
    their guards (not the master, the phases, idle spares nor the guards of idle spares)."""
    live = processes_in(mark=site.mark)
    idle = {str(pid) for pid, line in live if line.startswith("zeus command: (ready)")}
    tree = []
    for pid, line in live:
        if line.startswith(("zeus phase:", "zeus command: (ready)")) or " start" in line:
            continue
        if line.startswith("zeus guard: ") and line.split()[2] in idle:
            continue
        tree.append((pid, line.strip()))
    return tree


def roles(tree: list[tuple[int, str]]) -> list[str]:
    """Each process's role: its title up to the first argument (``zeus runserver`` for clients,
    ``zeus command: runserver``, ``zeus guard``...), sorted."""
    names = []
    for _, line in tree:
        if line.startswith("zeus guard: "):
            names.append("zeus guard")
        elif line.startswith(("zeus command:", "zeus runner:", "zeus reloader:")):
            names.append(line)
        else:
            names.append("client")
    return sorted(names)


def shape(names: list[str]) -> dict[str, float]:
    """How many of each role ``names`` (from :func:`roles`) holds; a command forked by a runner
    and a spare command with its two guards count alike."""
    known = {"client": names.count("client"),
             "reloader": names.count("zeus reloader: runserver"),
             "server": names.count("zeus command: runserver"),
             "runner or guards": names.count("zeus runner: runserver")
             + names.count("zeus guard") / 2}
    assert sum(names.count(n) for n in ("client", "zeus reloader: runserver",
                                        "zeus command: runserver", "zeus runner: runserver",
                                        "zeus guard")) == len(names), names
    return known


def save(site: DjangoProject, greeting: str) -> None:
    (site.root / "polls" / "views.py").write_text(VIEW.format(greeting=greeting))


def serving(port: int, greeting: str) -> bool:
    return fetch(f"http://127.0.0.1:{port}/polls/") == greeting


#: The server tree from the first reload on: two clients (the user's and the reloader's), the
#: reloader (once the first command), one server command, and for each of those two a runner or
#: a guard pair.
AFTER_A_RELOAD = {"client": 2, "reloader": 1, "server": 1, "runner or guards": 2}
#: Before any: the user's client, the server command, its runner or guards.
BEFORE_A_RELOAD = {"client": 1, "reloader": 0, "server": 1, "runner or guards": 1}
#: How long the previous server's processes may take to leave once the new server serves.
SETTLE_TIMEOUT = 5.0


def settle(site: DjangoProject, expected: dict[str, float], what: str,
           pump: Callable[[], object] = lambda: None) -> None:
    """Wait until the server tree has the shape ``expected``."""
    def settled() -> bool:
        pump()
        return shape(roles(server_tree(site))) == expected

    try:
        wait_for(settled, SETTLE_TIMEOUT, interval=0.1, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {server_tree(site)}") from None


def reload_times(site: DjangoProject, port: int, saves: int,
                 pump: Callable[[], object] = lambda: None) -> None:
    """Save the view ``saves`` times, each time waiting for the server to serve the new text,
    then for the server tree to have the shape :data:`AFTER_A_RELOAD` (it never does when
    reloads leave processes behind). ``pump`` is called while waiting (reads a terminal)."""
    for n in range(saves):
        deadline = time.monotonic() + RELOADER_FIRST_LOOK
        while time.monotonic() < deadline:
            pump()
            time.sleep(0.1)
        greeting = f"Hello from reload {n} of {port}"
        save(site, greeting)

        def served(greeting: str = greeting) -> bool:
            pump()
            return serving(port, greeting)

        wait_for(served, RELOAD_TIMEOUT, interval=0.1,
                 what=f"the server to serve save {n}\n{site.log[-2000:]}")
        settle(site, AFTER_A_RELOAD, f"one server tree after save {n}", pump)


def gone(site: DjangoProject, port: int) -> None:
    wait_for(lambda: not port_open(port), 5, what=f"port {port} closed")
    wait_for(lambda: not server_tree(site), 5,
             what=f"no server process left: {server_tree(site)}")


def test_reloads_leave_exactly_one_server_tree_and_sigint_ends_it(master: Master,
                                                                  site: DjangoProject,
                                                                  tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "runserver.out"
    save(site, "Hello from the first server")
    with open(out, "wb") as sink:
        client = subprocess.Popen([ZEUS, "runserver", f"127.0.0.1:{port}"], cwd=site.root,
                                  stdin=subprocess.DEVNULL, stdout=sink,
                                  stderr=subprocess.STDOUT, env=site.env())
    try:
        wait_for(lambda: serving(port, "Hello from the first server") or client.poll() is not None,
                 SERVER_TIMEOUT, interval=0.05, what="the server to answer")
        assert client.poll() is None, out.read_text(errors="replace")
        settle(site, BEFORE_A_RELOAD, "the first server's tree")
        reload_times(site, port, SAVES)
        assert client.poll() is None, out.read_text(errors="replace")

        client.send_signal(signal.SIGINT)
        code = client.wait(STOP_TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(STOP_TIMEOUT)
    output = out.read_text(errors="replace")
    assert code == 0, output
    assert output.count("polls/views.py changed, reloading.") == SAVES, output
    gone(site, port)


def test_ctrl_c_on_a_terminal_ends_a_reloaded_server(master: Master, site: DjangoProject) -> None:
    port = free_port()
    save(site, "Hello from the terminal server")
    child = pexpect.spawn(ZEUS, ["runserver", f"127.0.0.1:{port}"], cwd=str(site.root),
                          env=site.env(), timeout=SERVER_TIMEOUT, dimensions=(24, 80))
    shown = io.BytesIO()
    child.logfile_read = shown

    def pump() -> None:
        """Read what the terminal shows (into ``shown``), so the server never blocks on it."""
        try:
            child.read_nonblocking(65536, timeout=0)
        except (pexpect.TIMEOUT, pexpect.EOF):
            pass

    try:
        child.expect(rb"Quit the server with CONTROL-C")
        wait_for(lambda: pump() or serving(port, "Hello from the terminal server"),
                 SERVER_TIMEOUT, interval=0.05, what="the server to answer")
        settle(site, BEFORE_A_RELOAD, "the first server's tree", pump)
        reload_times(site, port, 2, pump)
        # ^C typed at the terminal: through the user's client and the reloader's client to the
        # serving command's terminal.
        child.sendintr()
        child.expect(pexpect.EOF, timeout=STOP_TIMEOUT)
        child.close()
    finally:
        if child.isalive():
            child.close(force=True)
    out = shown.getvalue()
    assert exit_code(child) == 0, out
    assert out.count(b"views.py changed, reloading.") == 2, out
    assert b"Traceback" not in out, out
    gone(site, port)
