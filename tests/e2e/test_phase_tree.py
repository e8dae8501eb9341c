"""Phases are forked by their own parent, once: requests queued in a parent never leak into the
children it forks (regression: a child inherited its parent's unread ``S:`` and forked a
sibling)."""

from __future__ import annotations

import time

from tests.harness.master import Master
from tests.harness.processes import parent_of
from tests.harness.project import Project
from tests.harness.waits import wait_for

TREE = {"boot": {"a": {"a1": {"deep": None}, "shallow": None}, "b": {"bcmd": None}}}
PLAN = """
import zeuspy

class TreePlan(zeuspy.Plan):
    def boot(self): pass
    def a(self): pass
    def a1(self): pass
    def b(self): pass
    def deep(self, argv): print("deep")
    def shallow(self, argv): print("shallow")
    def bcmd(self, argv): print("b")
"""





def test_every_phase_is_forked_once_by_its_parent(project: Project) -> None:
    project.write(TREE, PLAN)
    master = Master(project, ("--simple-status",))
    try:
        master.wait_ready("boot", "a", "a1", "b")
        for command in ("shallow", "deep", "bcmd"):  # requests reach every phase
            assert project.run(command).returncode == 0
        time.sleep(0.3)
        pids = {name: master.phase_pid(name) for name in ("boot", "a", "a1", "b")}
        assert parent_of(pids["a"]) == pids["boot"]
        assert parent_of(pids["b"]) == pids["boot"]
        assert parent_of(pids["a1"]) == pids["a"]
        log = project.log
        for name in pids:
            assert log.count(f"phase {name} registered: pid") == 1, log
        assert "late registration" not in log
        wait_for(lambda: "ready" in master.output, what="status lines")
    finally:
        master.stop()


def test_client_ends_when_runner_and_command_both_die(project: Project) -> None:
    """Nobody is left to report the status: the master notices and the client still ends."""
    import os
    import re
    import signal
    import subprocess

    from tests.harness.project import ZEUS

    master = Master(project, ("--simple-status",))
    try:
        master.wait_ready("boot", "app")
        client = subprocess.Popen([ZEUS, "sleep", "30"], cwd=project.root, env=project.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert client.stdout is not None
            line = client.stdout.readline()
            match = re.match(rb"sleeping (\d+)", line)
            assert match, line
            command = int(match.group(1))
            runner = parent_of(command)
            os.kill(runner, signal.SIGKILL)
            os.kill(command, signal.SIGKILL)
            status = client.wait(timeout=8)
            assert status != 0
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(5)
    finally:
        master.stop()
