"""The subcommands a developer types when something looks wrong: `zeus status` (tree, --json
against its schema in every exit case, --log), `zeus commands`, `help`, `version`, each
subcommand's --help, and the one-line errors (unknown command, a built-in name in the plan, no
zeus.json)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest

import zeuspy
from tests.e2e._cli_support import phases_by_name, status_json, validate_status, wait_status
from tests.harness.master import Master, running_master
from tests.harness.project import ZEUS, Project

TREE: dict[str, Any] = {
    "boot": {
        "app": {"hello": ["hi", "h"], "pytest": ["test"], "deep": {"deepcmd": None}},
        "slow": {"slowcmd": None},
    }
}

#: `app` raises when broken.flag exists; `slow` boots until slow.go exists (bounded).
PLAN = """
import os, sys, time
import zeuspy

class StatusPlan(zeuspy.Plan):
    def boot(self):
        print("PHASE-OUTPUT-MARK boot", flush=True)

    def app(self):
        if os.path.exists("broken.flag"):
            raise RuntimeError("app is broken on purpose")

    def deep(self):
        pass

    def slow(self):
        deadline = time.monotonic() + 20
        while not os.path.exists("slow.go") and time.monotonic() < deadline:
            time.sleep(0.02)

    def hello(self, argv):
        print("hello", *argv)

    def pytest(self, argv):
        pass

    def deepcmd(self, argv):
        pass

    def slowcmd(self, argv):
        pass
"""

PHASES = ("boot", "app", "deep", "slow")


@pytest.fixture
def proj(project: Project) -> Project:
    project.write(TREE, PLAN)
    return project


def go(project: Project) -> None:
    (project.root / "slow.go").write_text("")


# -- zeus status --json ---------------------------------------------------------------------------

def test_status_json_all_ready(proj: Project) -> None:
    go(proj)
    with running_master(proj, *PHASES) as master:
        code, data = status_json(proj)
        assert code == 0, data
        assert data["schema"] == 1
        m = data["master"]
        assert m["pid"] == master.proc.pid
        assert m["root"] == str(proj.root)
        assert m["config"] == str(proj.root / "zeus.json")
        assert m["builtin"] is None
        assert m["socket"] == str(proj.root / ".zeus.sock")
        assert m["version"] == zeuspy.__version__
        assert abs(m["started"] - time.time()) < 60
        assert m["watcher"] in ("events", "polling")
        phases = phases_by_name(data)
        assert [p["name"] for p in data["phases"]] == ["boot", "app", "deep", "slow"]
        assert [(p["parent"], p["depth"]) for p in data["phases"]] == [
            (None, 0), ("boot", 1), ("app", 2), ("boot", 1)]
        for name in PHASES:
            assert phases[name]["state"] == "ready"
            assert phases[name]["pid"] == master.phase_pid(name)
            assert phases[name]["error"] is None and phases[name]["blocked_by"] is None
        assert data["commands"] == [
            {"name": "hello", "aliases": ["hi", "h"], "phase": "app", "state": "ready"},
            {"name": "pytest", "aliases": ["test"], "phase": "app", "state": "ready"},
            {"name": "deepcmd", "aliases": [], "phase": "deep", "state": "ready"},
            {"name": "slowcmd", "aliases": [], "phase": "slow", "state": "ready"},
        ]


def test_status_json_crashed(proj: Project) -> None:
    go(proj)
    (proj.root / "broken.flag").write_text("")
    with running_master(proj, "boot", "slow") as master:
        _, data = wait_status(proj, lambda c, d: c == 1, "exit 1 (crashed)")
        phases = phases_by_name(data)
        app = phases["app"]
        assert app["state"] == "crashed"
        assert app["pid"] is None and app["boot_seconds"] is None
        assert app["error"].startswith("Traceback (most recent call last):"), app["error"]
        assert "RuntimeError: app is broken on purpose" in app["error"]
        assert phases["deep"]["state"] == "waiting"
        assert phases["deep"]["blocked_by"] == "app"
        assert phases["boot"]["state"] == phases["slow"]["state"] == "ready"
        states = {c["name"]: c["state"] for c in data["commands"]}
        assert states == {"hello": "crashed", "pytest": "crashed", "deepcmd": "waiting",
                          "slowcmd": "ready"}
        assert master.proc.poll() is None


def test_status_json_no_master(proj: Project) -> None:
    result = proj.run("status", "--json")
    assert result.returncode == 3, result
    data = json.loads(result.stdout)
    validate_status(data)
    assert data == {"schema": 1, "master": None, "phases": [], "commands": []}


def test_status_json_booting(proj: Project) -> None:
    master = Master(proj)
    try:
        master.wait_ready("boot", "app", "deep")
        code, data = wait_status(proj, lambda c, d: phases_by_name(d)["slow"]["state"] == "booting",
                                 "slow booting")
        assert code == 4, data
        slow = phases_by_name(data)["slow"]
        assert slow["boot_seconds"] is None and slow["error"] is None
        assert [c["state"] for c in data["commands"] if c["name"] == "slowcmd"] == ["booting"]
        go(proj)
        code, data = wait_status(proj, lambda c, d: c == 0, "all ready after slow.go")
        assert phases_by_name(data)["slow"]["state"] == "ready"
    finally:
        master.stop()


# -- zeus status (people) and --log ---------------------------------------------------------------

def test_status_tree_for_people(proj: Project) -> None:
    go(proj)
    (proj.root / "broken.flag").write_text("")
    with running_master(proj, "boot", "slow") as master:
        wait_status(proj, lambda c, d: c == 1, "app crashed")
        _, data = status_json(proj)
        phases = phases_by_name(data)
        result = proj.run("status")
        assert result.returncode == 1, result
        assert result.stderr == b""
        text = result.stdout.decode()
        assert "\x1b" not in text  # not a terminal: no colours
        lines = text.splitlines()
        assert lines[0].startswith(
            f"master pid {master.proc.pid} · {proj.root} · watching files by")
        boot = next(line for line in lines if line.startswith("boot "))
        assert re.search(rf"ready  pid {phases['boot']['pid']}  booted in \d+\.\d\d s$", boot)
        slow = next(line for line in lines if line.startswith("└── slow"))
        assert f"pid {phases['slow']['pid']}" in slow and "ready" in slow
        app_index = next(i for i, line in enumerate(lines) if line.startswith("├── app"))
        assert "crashed" in lines[app_index]
        # The first lines of the error follow the crashed phase, indented under it.
        error = phases["app"]["error"].strip().splitlines()
        shown = lines[app_index + 1:app_index + 1 + len(error[:6])]
        assert [line.strip(" │") for line in shown] == [e.strip() for e in error[:6]], text
        assert shown[0].strip(" │") == "Traceback (most recent call last):"
        assert "RuntimeError: app is broken on purpose" in text  # a short traceback: all shown
        deep = next(line for line in lines if "└── deep" in line)
        assert "waiting" in deep and "waiting for app" in deep


def test_status_without_master_says_so(proj: Project) -> None:
    result = proj.run("status")
    assert result.returncode == 3
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "no master is running" in err and "zeus start" in err


def test_status_log_shows_phase_output(proj: Project) -> None:
    go(proj)
    with running_master(proj, *PHASES):
        result = proj.run("status", "--log")
    assert result.returncode == 0, result
    text = result.stdout.decode()
    assert text.startswith(f"==> {proj.root / '.zeus' / 'master.log'} ")
    assert "PHASE-OUTPUT-MARK boot" in text
    assert "phase boot: booting -> ready" in text


def test_status_log_without_a_log(proj: Project) -> None:
    result = proj.run("status", "--log")
    assert result.returncode == 1
    assert b"no log at" in result.stderr


# -- zeus commands, help, version, --help ---------------------------------------------------------

def test_commands_lists_names_phases_and_aliases(proj: Project) -> None:
    result = proj.run("commands")
    assert result.returncode == 0, result
    rows = [line.split() for line in result.stdout.decode().splitlines()]
    assert rows == [
        ["hello", "in", "app", "(alias:", "hi,", "h)"],
        ["pytest", "in", "app", "(alias:", "test)"],
        ["deepcmd", "in", "deep"],
        ["slowcmd", "in", "slow"],
    ]


@pytest.mark.parametrize("args", [("help",), ("--help",), ("-h",)])
def test_help(proj: Project, args: tuple[str, ...]) -> None:
    result = proj.run(*args)
    assert result.returncode == 0
    text = result.stdout.decode()
    assert text.startswith("usage: zeus")
    for word in ("start", "init", "commands", "status", "restart", "stop", "version"):
        assert re.search(rf"^\s+zeus {word}\b", text, re.MULTILINE), word


@pytest.mark.parametrize("args", [("version",), ("--version",), ("-V",)])
def test_version(proj: Project, args: tuple[str, ...]) -> None:
    result = proj.run(*args)
    assert result.returncode == 0
    assert result.stdout.decode() == f"zeuspy {zeuspy.__version__}\n"


@pytest.mark.parametrize("word", ["start", "status", "init", "stop", "restart", "commands"])
def test_subcommand_help(proj: Project, word: str) -> None:
    result = proj.run(word, "--help")
    assert result.returncode == 0, result
    text = result.stdout.decode()
    assert text.startswith(f"usage: zeus {word}"), text
    assert "-h, --help" in text
    assert not (proj.root / ".zeus" / "master.pid").exists()


def test_start_help_names_its_options(proj: Project) -> None:
    text = proj.run("start", "--help").stdout.decode()
    for option in ("--detach", "--simple-status", "--no-color", "--log", "--file-change-delay"):
        assert option in text
    text = proj.run("status", "--help").stdout.decode()
    assert "--json" in text and "--log" in text


# -- errors users meet ----------------------------------------------------------------------------

def test_unknown_command_suggests_the_nearest_names(proj: Project) -> None:
    go(proj)
    with running_master(proj, "boot", "app"):
        result = proj.run("pytets")
        assert result.returncode == 127
        assert result.stdout == b""
        err = result.stderr.decode()
        assert 'Could not find command "pytets". Did you mean pytest' in err
        result = proj.run("helo")
        assert "Did you mean hello?" in result.stderr.decode()
        assert "Available commands: hello (alias: hi, h), pytest (alias: test)" in \
            result.stderr.decode()


@pytest.mark.parametrize("tree", [
    {"boot": {"status": None}},
    {"boot": {"app": {"hello": ["stop"]}}},
    {"boot": {"app": {"init": None}}},
])
def test_a_builtin_name_in_the_plan_is_refused(project: Project, tree: dict[str, Any]) -> None:
    plan = "import zeuspy\n\nclass P(zeuspy.Plan):\n    def boot(self): pass\n" \
           "    def app(self): pass\n    def hello(self, argv): pass\n" \
           "    def status(self, argv): pass\n    def init(self, argv): pass\n"
    project.write(tree, plan)
    result = project.run("start", timeout=20)
    assert result.returncode == 2, result
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1, err
    assert "has the name of the built-in" in err and "rename it" in err
    assert not (project.root / ".zeus" / "master.pid").exists()


def test_no_zeus_json_uses_the_builtin_plan(project: Project) -> None:
    empty = project.root.parent / "empty"
    empty.mkdir()
    result = subprocess.run([ZEUS, "commands"], cwd=empty, capture_output=True, timeout=20,
                            env=project.env())
    assert result.returncode == 0, result
    listed = result.stdout.decode()
    for line in ("run", "in app", "(alias: python)", "shell", "pytest", "in test_environment"):
        assert line in listed, listed
    assert list(empty.iterdir()) == []
