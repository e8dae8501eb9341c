"""The master end to end: plan validation at start, lifecycle and signals, phase supervision."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.master import Master, last_state, running_master, transitions, wait_phases
from tests.harness.plans import DEFAULT_PLAN, DEFAULT_TREE
from tests.harness.processes import alive, fd_count, project_leftovers, project_pids
from tests.harness.project import ZEUS, Project
from tests.harness.waits import EXIT_TIMEOUT, wait_for


def spare_processes(pids: set[int]) -> set[int]:
    """The idle spares among ``pids`` (a phase that ran a command keeps a command forked in
    advance, titled "zeus command: (ready)", and its guard, titled with its pid)."""
    spares = set()
    guards: dict[int, int] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
        except OSError:
            continue
        if title.startswith(b"zeus command: (ready)"):
            spares.add(pid)
        elif title.startswith(b"zeus guard: "):
            guards[pid] = int(title.split()[2].strip(b"\0"))
    return spares | {pid for pid, leader in guards.items() if leader in spares}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_strays(project: Project) -> Iterator[None]:
    yield
    project_leftovers(project)


@pytest.fixture
def master(project: Project) -> Iterator[Master]:
    """A running master for the default plan, boot and app ready."""
    with running_master(project.write(), "boot", "app") as running:
        yield running


class MasterAt(Master):
    """A ``zeus start`` run from ``cwd`` (the helpers' Master always runs in the project root)."""

    def __init__(self, project: Project, cwd: Path, args: tuple[str, ...] = ()) -> None:
        self.project = project
        self.output_path = project.root / "master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([ZEUS, "start", *args], cwd=cwd, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=project.env())


def sock_path(project: Project) -> Path:
    return project.root / ".zeus.sock"


def pid_path(project: Project) -> Path:
    return project.root / ".zeus" / "master.pid"


def registrations(project: Project, name: str) -> int:
    return sum(f"phase {name} registered: pid" in line for line in project.log.splitlines())


def ready_count(master: Master, name: str) -> int:
    return transitions(master.project, name, "ready")


def assert_hello(project: Project, *args: str, cwd: Path | None = None) -> None:
    if cwd is None:
        result = project.run("hello", *args)
    else:
        result = subprocess.run([ZEUS, "hello", *args], cwd=cwd, capture_output=True,
                                timeout=EXIT_TIMEOUT, env=project.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("hello " + " ".join(args)).rstrip().encode() + b"\n"


def assert_torn_down(project: Project, pids: list[int] | tuple[int, ...] = ()) -> None:
    """No socket, no pid file, and (soon) no process of the test left, ``pids`` included."""
    assert not sock_path(project).exists(), "socket left behind"
    assert not pid_path(project).exists(), "pid file left behind"
    wait_for(lambda: not project_pids(project) and not any(alive(p) for p in pids),
             timeout=3.0, what="every process of the master to exit")


def wait_restarted(master: Master, name: str, old_pid: int, readies_before: int) -> int:
    """Wait until ``name`` registered with a new pid and reported ready again; the new pid."""
    wait_for(lambda: master.phase_pid(name) != old_pid if registrations(master.project, name)
             else False, timeout=10.0, what=f"phase {name} to register again")
    wait_for(lambda: ready_count(master, name) > readies_before, timeout=10.0,
             what=f"phase {name} to be ready again")
    return master.phase_pid(name)


# -- 1. plans and config -----------------------------------------------------------------------

PLAN_WITHOUT_Y = """
import zeuspy

class P(zeuspy.Plan):
    def boot(self):
        pass

    def app(self):
        pass

    def x(self, argv):
        print("x")
"""

PLAN_WITHOUT_APP = """
import zeuspy

class P(zeuspy.Plan):
    def boot(self):
        pass

    def x(self, argv):
        print("x")
"""

BAD_JSON = '{\n  "plan": {\n    "boot": {"app": {"x": null},}\n  }\n}\n'


def _json_position(text: str) -> tuple[int, int]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.colno
    raise AssertionError("the JSON is valid")


BAD_CONFIGS = {
    # id: (zeus.json text, plan text or None to delete the plan file, substrings of the one line)
    "invalid-json": (BAD_JSON, PLAN_WITHOUT_Y,
                     ["zeus.json:{}:{}".format(*_json_position(BAD_JSON)), "invalid JSON"]),
    "root-not-boot": ('{"plan": {"root": {"x": null}}}', PLAN_WITHOUT_Y,
                      ["zeus.json", "'root'", '"boot"']),
    "plan-not-object": ('{"plan": ["boot"]}', PLAN_WITHOUT_Y, ["zeus.json", '"plan"']),
    "number-as-phase": ('{"plan": {"boot": {"app": 3}}}', PLAN_WITHOUT_Y,
                        ["zeus.json", '"app"', "number"]),
    "number-as-command": ('{"plan": {"boot": {"app": {"x": 7}}}}', PLAN_WITHOUT_Y,
                          ["zeus.json", '"x"', "number"]),
    "duplicate-key": ('{"plan": {"boot": {"app": {"x": null}, "app": {"x": null}}}}',
                      PLAN_WITHOUT_Y, ["zeus.json", "'app'", "twice"]),
    "same-name-two-branches": (
        '{"plan": {"boot": {"app": {"x": null}, "other": {"x": null}}}}', PLAN_WITHOUT_Y,
        ["zeus.json", "'x'", "already used"]),
    "command-method-missing": ('{"plan": {"boot": {"app": {"x": null, "y": null}}}}',
                               PLAN_WITHOUT_Y, ["zeus_plan.py", '"y"', "no method"]),
    "phase-method-missing": ('{"plan": {"boot": {"app": {"x": null}}}}', PLAN_WITHOUT_APP,
                             ["zeus_plan.py", '"app"', "no method"]),
    "no-plan-file": ('{"plan": {"boot": {"app": {"x": null}}}}', None,
                     ["zeus_plan.py", "not found"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_bad_plan_is_one_line_exit_2_and_starts_nothing(project: Project, case: str) -> None:
    config_text, plan_text, expected = BAD_CONFIGS[case]
    (project.root / "zeus.json").write_text(config_text)
    plan_path = project.root / "zeus_plan.py"
    if plan_text is None:
        plan_path.unlink()
    else:
        plan_path.write_text(textwrap.dedent(plan_text))
    result = project.run("start")
    err = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, err)
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    for part in expected:
        if part[0] in "'\"":  # a quoted node name: either quote will do
            assert re.search(f"[\"']{re.escape(part[1:-1])}[\"']", err), f"{part} not in {err!r}"
        else:
            assert part in err, f"{part!r} not in {err!r}"
    assert str(project.root) in err, f"the message does not name the file: {err!r}"
    assert not sock_path(project).exists()
    assert not pid_path(project).exists()
    assert not project_pids(project)


def test_config_option_from_another_folder(project: Project, tmp_path: Path) -> None:
    project.write()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(project.root / "zeus.json")
    master = MasterAt(project, elsewhere, ("--config", config))
    try:
        wait_phases(master, "boot", "app")
        assert sock_path(project).exists(), "the socket belongs in the config's folder"
        assert not (elsewhere / ".zeus.sock").exists()
        assert_hello(project, "there")
        stopped = subprocess.run([ZEUS, "--config", config, "stop"], cwd=elsewhere,
                                 capture_output=True, timeout=EXIT_TIMEOUT, env=project.env())
        assert stopped.returncode == 0, stopped.stderr
        assert master.proc.wait(EXIT_TIMEOUT) == 0
    finally:
        master.stop()
    assert_torn_down(project)


def test_config_option_for_a_command_from_another_folder(master: Master, project: Project,
                                                         tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([ZEUS, "--config", str(project.root / "zeus.json"), "hello", "x"],
                            cwd=elsewhere, capture_output=True, timeout=EXIT_TIMEOUT,
                            env=project.env())
    assert (result.returncode, result.stdout) == (0, b"hello x\n"), result.stderr


def test_config_found_in_a_parent_folder(project: Project) -> None:
    project.write()
    sub = project.root / "src" / "deep"
    sub.mkdir(parents=True)
    master = MasterAt(project, sub)
    try:
        wait_phases(master, "boot", "app")
        assert sock_path(project).exists()
        assert not (sub / ".zeus.sock").exists()
        assert pid_path(project).read_text().strip() == str(master.proc.pid)
        assert_hello(project, "from", "sub", cwd=sub)
    finally:
        assert master.stop() == 0
    assert_torn_down(project)


def test_command_is_parsed_as_a_shell_line(project: Project) -> None:
    folder = project.root / "my plans"
    folder.mkdir()
    (folder / "zeus_plan.py").write_text(textwrap.dedent(DEFAULT_PLAN))
    (project.root / "zeus_plan.py").unlink()
    command = f"{shlex.quote(sys.executable)} -m zeuspy.shim 'my plans/zeus_plan.py'"
    (project.root / "zeus.json").write_text(json.dumps({"command": command,
                                                        "plan": DEFAULT_TREE}))
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        assert_hello(project, "quoted")
    finally:
        assert master.stop() == 0


# -- 2. lifecycle ------------------------------------------------------------------------------


def test_socket_is_private(master: Master, project: Project) -> None:
    mode = os.stat(sock_path(project)).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600, oct(stat.S_IMODE(mode))
    assert pid_path(project).read_text().strip() == str(master.proc.pid)


def test_second_start_is_refused_and_first_master_unaffected(master: Master,
                                                            project: Project) -> None:
    before = os.stat(sock_path(project))
    result = project.run("start")
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "already running" in err and str(master.proc.pid) in err, err
    assert err.count("\n") == 1, err
    assert master.proc.poll() is None
    after = os.stat(sock_path(project))
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino), "socket replaced"
    assert pid_path(project).read_text().strip() == str(master.proc.pid)
    assert_hello(project, "still")


def test_stale_socket_and_pid_file_are_replaced(project: Project) -> None:
    project.write()
    first = Master(project)
    try:
        wait_phases(first, "boot", "app")
        first.proc.kill()
        first.proc.wait(EXIT_TIMEOUT)
    finally:
        first.stop()
    assert sock_path(project).exists() and pid_path(project).exists(), "nothing stale to test"
    wait_for(lambda: not project_pids(project), timeout=3.0, what="old phases to exit")
    since = len(project.log)
    second = Master(project)
    try:
        wait_phases(second, "boot", "app", since=since)
        assert pid_path(project).read_text().strip() == str(second.proc.pid)
        assert_hello(project, "again")
    finally:
        assert second.stop() == 0
    assert_torn_down(project)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 0),
                                              (signal.SIGHUP, 128 + signal.SIGHUP)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_tears_down(project: Project, signum: int, code: int) -> None:
    project.write()
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        phases = [master.phase_pid("boot"), master.phase_pid("app")]
        assert all(alive(pid) for pid in phases)
    finally:
        status = master.stop(signum)
    assert status == code
    assert_torn_down(project, phases)


def test_stop_with_a_command_running_leaves_nothing(project: Project) -> None:
    project.write()
    master = Master(project)
    client = None
    try:
        wait_phases(master, "boot", "app")
        client = subprocess.Popen([ZEUS, "sleep", "30"], cwd=project.root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  env=project.env())
        command_pid = int(_read_line(client, 10.0).split()[1])
        started_at = time.monotonic()
        assert master.stop(signal.SIGINT) == 0
        assert time.monotonic() - started_at < 5.0
        client.communicate(timeout=EXIT_TIMEOUT)
        assert client.returncode != 0, "the command was stopped: its client cannot succeed"
    finally:
        master.stop()
        if client is not None and client.poll() is None:
            client.kill()
            client.wait(EXIT_TIMEOUT)
    assert_torn_down(project, [command_pid])


def test_zeus_stop(master: Master, project: Project) -> None:
    phases = [master.phase_pid("boot"), master.phase_pid("app")]
    result = project.run("stop")
    assert result.returncode == 0, result.stderr
    assert master.proc.wait(EXIT_TIMEOUT) == 0
    assert_torn_down(project, phases)
    again = project.run("stop")
    assert again.returncode == 1
    assert b"no master" in again.stdout + again.stderr


@pytest.mark.parametrize("word", ["stop", "restart"])
def test_stop_or_restart_without_master_is_an_error_on_stderr(project: Project,
                                                              word: str) -> None:
    result = project.run(word)
    assert result.returncode == 1
    assert b"no master is running" in result.stderr
    assert result.stdout == b""


@pytest.mark.parametrize("how", ["SIGUSR1", "zeus restart"])
def test_restart_reboots_every_phase(master: Master, project: Project, how: str) -> None:
    old = {name: master.phase_pid(name) for name in ("boot", "app")}
    readies = {name: ready_count(master, name) for name in old}
    if how == "SIGUSR1":
        master.proc.send_signal(signal.SIGUSR1)
    else:
        result = project.run("restart")
        assert result.returncode == 0, result.stderr
    new = {name: wait_restarted(master, name, old[name], readies[name]) for name in old}
    assert all(new[name] != old[name] for name in old)
    wait_for(lambda: not any(alive(pid) for pid in old.values()), timeout=3.0,
             what="the old phases to exit")
    assert_hello(project, "restarted")
    assert master.proc.poll() is None


def test_master_sigkilled_phases_exit_within_2s(master: Master, project: Project) -> None:
    phases = [master.phase_pid("boot"), master.phase_pid("app")]
    master.proc.kill()
    start = time.monotonic()
    master.proc.wait(EXIT_TIMEOUT)
    wait_for(lambda: not project_pids(project)
             and not any(alive(pid) for pid in phases),
             timeout=5.0, what="phases to exit after the master died")
    took = time.monotonic() - start
    assert took < 2.0, f"phases outlived the master by {took:.2f} s"


BOOT_OUTPUT = """
    def boot(self):
        print("BOOT-STDOUT-MARK")
        print("BOOT-STDERR-MARK", file=sys.stderr)

    def app(self):
        print("APP-STDOUT-MARK")
"""


def test_phase_output_goes_to_the_log(project: Project) -> None:
    project.write(methods=BOOT_OUTPUT)
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        for mark in ("BOOT-STDOUT-MARK", "BOOT-STDERR-MARK", "APP-STDOUT-MARK"):
            wait_for(lambda mark=mark: mark in project.log, timeout=3.0, what=f"{mark} in the log")
            assert mark not in master.output, f"{mark} printed on the master's stdout"
        assert_hello(project)
    finally:
        master.stop()
    assert "MARK" not in master.output


def test_dead_phase_is_restarted(master: Master, project: Project) -> None:
    old = master.phase_pid("app")
    boot = master.phase_pid("boot")
    readies = ready_count(master, "app")
    os.kill(old, signal.SIGKILL)
    new = wait_restarted(master, "app", old, readies)
    assert new != old
    assert alive(new)
    assert master.phase_pid("boot") == boot, "the parent phase should not be restarted"
    assert_hello(project, "revived")


def test_dead_root_phase_is_restarted(master: Master, project: Project) -> None:
    old = {name: master.phase_pid(name) for name in ("boot", "app")}
    readies = {name: ready_count(master, name) for name in old}
    os.kill(old["boot"], signal.SIGKILL)
    new = {name: wait_restarted(master, name, old[name], readies[name]) for name in old}
    assert all(new[name] != old[name] for name in old)
    wait_for(lambda: not alive(old["app"]), timeout=3.0, what="the old app phase to exit")
    assert_hello(project, "reborn")
    assert master.proc.poll() is None


CRASHING_APP = """
    def app(self):
        raise RuntimeError("kaboom-in-app")
"""


def test_failed_action_crashes_phase_without_restart_loop(project: Project) -> None:
    project.write(methods=CRASHING_APP)
    master = Master(project)
    try:
        wait_phases(master, "boot")
        wait_for(lambda: last_state(project, "app") == "crashed", timeout=10.0,
                 what="app to crash")
        result = project.run("hello")
        shown = (result.stdout + result.stderr).decode()
        assert result.returncode == 1, shown
        assert "Traceback" in shown and "RuntimeError: kaboom-in-app" in shown, shown
        count = registrations(project, "app")
        booting = transitions(project, "app", "booting")
        assert count == 1
        time.sleep(1.2)
        assert registrations(project, "app") == count, "crashed phase was restarted on its own"
        assert transitions(project, "app", "booting") == booting
        again = project.run("hello")
        assert again.returncode == 1
        assert b"kaboom-in-app" in again.stdout + again.stderr
        assert master.proc.poll() is None
        # A full reboot is what brings it back (after the plan is fixed).
        project.write()
        restarted = project.run("restart")
        assert restarted.returncode == 0, restarted.stderr
        wait_for(lambda: registrations(project, "app") > count
                 and ready_count(master, "app") > 0, timeout=10.0, what="app to be ready")
        assert_hello(project, "fixed")
    finally:
        assert master.stop() == 0


SLOW_APP = """
    def app(self):
        time.sleep(1.5)
"""


def test_command_waits_for_a_booting_phase(project: Project) -> None:
    project.write(methods=SLOW_APP)
    master = Master(project)
    try:
        wait_phases(master, "boot")
        wait_for(lambda: last_state(project, "app") == "booting", timeout=1.0,
                 what="app to be booting")
        result = project.run("hello", "patient")
        assert (result.returncode, result.stdout) == (0, b"hello patient\n"), result.stderr
        assert b"waiting for phase app" in result.stderr
        assert last_state(project, "app") == "ready"
    finally:
        assert master.stop() == 0


def test_restart_storm_settles_with_one_process_per_phase(master: Master,
                                                          project: Project) -> None:
    old = {name: master.phase_pid(name) for name in ("boot", "app")}
    for _ in range(5):
        master.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.05)
    wait_for(lambda: master.phase_pid("app") != old["app"] and ready_count(master, "app") >= 2,
             timeout=10.0, what="app to be ready after the restarts")

    def settled() -> bool:
        return last_state(project, "boot") == "ready" and last_state(project, "app") == "ready"

    wait_for(settled, timeout=10.0, what="the last restart to finish")
    time.sleep(0.5)
    assert settled(), project.log
    assert_hello(project, "calm")
    pids = {master.phase_pid("boot"), master.phase_pid("app")}
    found: list[set[int]] = []

    def only_current() -> bool:
        alive = project_pids(project) - {master.proc.pid}
        found.append(alive - spare_processes(alive))
        return found[-1] == pids

    with contextlib.suppress(AssertionError):
        wait_for(only_current, timeout=5.0, what="exactly the two current phases to be alive")
    assert found[-1] == pids, f"alive: {found[-1]}, current phases: {pids}"
    assert master.proc.poll() is None


def test_master_does_not_leak_fds_per_command(master: Master, project: Project) -> None:
    assert_hello(project)
    time.sleep(0.2)
    before = fd_count(master.proc.pid)
    for i in range(20):
        assert_hello(project, str(i))
    assert project.run("exitwith", "3").returncode == 3
    assert project.run("nope").returncode != 0
    time.sleep(0.2)
    after = fd_count(master.proc.pid)
    assert after == before, f"{before} fds before 22 commands, {after} after"


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no line within {timeout} s (got {data!r})"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"EOF before a line (got {data!r})"
            data += chunk
    return data


def test_running_command_survives_restart_of_its_phase(master: Master, project: Project) -> None:
    client = subprocess.Popen([ZEUS, "sleep", "2.5"], cwd=project.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=project.env())
    try:
        line = _read_line(client, 10.0)
        assert line.startswith(b"sleeping ")
        command_pid = int(line.split()[1])
        old = master.phase_pid("app")
        readies = ready_count(master, "app")
        result = project.run("restart")
        assert result.returncode == 0, result.stderr
        wait_restarted(master, "app", old, readies)
        assert not alive(old)
        assert alive(command_pid), "the restart killed a running command"
        out, err = client.communicate(timeout=EXIT_TIMEOUT)
        assert client.returncode == 0, err
        assert out == b"", out  # the command printed only its first line
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(EXIT_TIMEOUT)


def test_unknown_command(master: Master, project: Project) -> None:
    result = project.run("nope", "arg")
    assert result.returncode != 0
    assert b'Could not find command "nope".' in result.stderr + result.stdout
    assert b"hello" in result.stderr + result.stdout, "should list the available commands"
    assert_hello(project)

