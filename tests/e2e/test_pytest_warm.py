"""What the test_environment phase prepares of a pytest run (zeuspy.plans.pytest_warm) is taken
only while it is valid: after each kind of change, `zeus pytest` does what plain pytest does
(exit status, counts, whole output), and the pieces a command took are checked where it matters.

The changes: a test file, the root conftest.py (adding and removing a plugin through
``pytest_plugins``), a nested conftest.py, pyproject.toml's pytest options, a plugin named with
``-p``, a default plugin blocked with ``-p no:NAME``, an environment variable pytest reads while
it builds its configuration (``TOX_ENV_DIR``), ``pytest.main`` called again inside a test, and an
entry-point plugin installed into, then removed from, a folder on ``sys.path`` (PYTHONPATH, set
for the master and for plain pytest alike) without any phase restarting.

One master serves the module. ``tests/test_probe.py`` writes, in a zeus run, which prepared
pieces the command took (``pytest_warm.used``) to the file named by WARM_PROBE; in a plain run
it writes nothing, and both outputs are the same.

With a pytest that lacks the API of a piece (tests.harness.pytest_api: before pytest 9.2) that
piece is never taken, which the tests assert, and the comparison with plain pytest is the same.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_pytest_plan import (
    PHASES,
    PytestProject,
    Run,
    assert_same,
    check_no_leaks,
    plain,
    reset_cache,
    zeus,
)
from tests.harness import pytest_api
from tests.harness.master import running_master
from tests.harness.processes import new_mark
from tests.harness.project import write_files
from tests.harness.waits import BOOT_TIMEOUT, wait_for

CONFTEST = """
    import pytest
    {plugins}

    def pytest_report_header(config):
        return "warm-fixture: root conftest {version}"


    @pytest.fixture
    def root_value():
        return {value}
    """

FILES = {
    "pyproject.toml": """
        [project]
        name = "warmproj"
        version = "0.1"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        markers = ["slow: a slow test"]
        """,
    "conftest.py": CONFTEST.format(plugins="", version="v1", value=41),
    "tests/conftest.py": """
        import pytest


        @pytest.fixture
        def nested_value():
            return "a"
        """,
    "tests/test_main.py": """
        def test_root(root_value):
            assert root_value + 1 == 42


        def test_nested(nested_value):
            assert nested_value == "a"


        def test_fails():
            assert [1, 2, 3] == [1, 2, 4]
        """,
    "tests/test_probe.py": """
        import os
        import sys


        def test_probe():
            warm = sys.modules.get("zeuspy.plans.pytest_warm")
            scan = sys.modules.get("zeuspy.plans.pytest_fixture_scan")
            target = os.environ.get("WARM_PROBE")
            if warm is not None and scan is not None and target:
                taken = sorted(warm.used) + (["fixture-scan"] if scan.narrowed else [])
                with open(target, "w") as probe:
                    probe.write(",".join(taken))
        """,
    "inner/test_inner_target.py": """
        def test_target():
            assert 1 == 2
        """,
}

#: A plain module in the PYTHONPATH folder: a plugin for ``-p`` and ``pytest_plugins``.
LOCAL_PLUGIN = """
    def pytest_report_header(config):
        return "localplug: loaded"
    """

#: An installed plugin: a module and its distribution's metadata with a pytest11 entry point.
ENTRY_POINT_PLUGIN = {
    "warmplug.py": """
        import pytest


        def pytest_report_header(config):
            return "warmplug: loaded"


        @pytest.fixture
        def warm_checked():
            value = 1
            assert value == 2
        """,
    "warmplug-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: warmplug\nVersion: 0.1\n",
    "warmplug-0.1.dist-info/entry_points.txt": "[pytest11]\nwarmplug = warmplug\n",
    "warmplug-0.1.dist-info/RECORD": ("warmplug.py,,\nwarmplug-0.1.dist-info/METADATA,,\n"
                                      "warmplug-0.1.dist-info/entry_points.txt,,\n"
                                      "warmplug-0.1.dist-info/RECORD,,\n"),
}


class WarmProject(PytestProject):
    """The fixture project; every process (master, plain pytest, zeus) gets the same
    PYTHONPATH (the plugin folder) and WARM_PROBE."""

    def __init__(self, root: Path, mark: str, site: Path) -> None:
        super().__init__(root, mark)
        self.site = site
        self.probe = root.parent / "probe.txt"

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(PYTHONPATH=str(self.site), WARM_PROBE=str(self.probe), **extra)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmProject]:
    base = tmp_path_factory.mktemp("pytest_warm")
    site = base / "site"
    write_files(site, {"localplug.py": LOCAL_PLUGIN})
    project = WarmProject(base / "proj", new_mark(), site)
    write_files(project.root, FILES)
    try:
        with running_master(project, *PHASES):
            yield project
    finally:
        check_no_leaks(project)


def phase_pid(proj: WarmProject) -> int | None:
    """The test_environment phase's pid when every phase is ready, else None."""
    done = proj.run("status", "--json")
    if done.returncode != 0:
        return None
    phases = {phase["name"]: phase for phase in json.loads(done.stdout)["phases"]}
    return int(phases["test_environment"]["pid"])


def ready_pid(proj: WarmProject, other_than: int | None = None) -> int:
    """Wait until every phase is ready (with a new test_environment when ``other_than``)."""
    return int(wait_for(lambda: (pid := phase_pid(proj)) not in (None, other_than) and pid,
                        BOOT_TIMEOUT, interval=0.05, what="the phases ready"))


def compare(proj: WarmProject, *args: str, autoload: bool = False,
            **env: str) -> tuple[Run, set[str]]:
    """Plain pytest then zeus pytest, from an empty cache; asserts they match. The zeus run
    and the prepared pieces its command took. Without ``autoload`` both runs have
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (the venv's plugins cost a plain run seconds; the phase
    loaded them all the same, so the command has them imported but not registered)."""
    if not autoload:
        env = {AUTOLOAD_OFF: "1", **env}
    reset_cache(proj.root)
    proj.probe.unlink(missing_ok=True)
    expected = plain(proj, *args, env=proj.env(**env))
    assert not proj.probe.exists()
    reset_cache(proj.root)
    got = zeus(proj, *args, env=proj.env(**env))
    assert_same(expected, got)
    taken = proj.probe.read_text().split(",") if proj.probe.exists() else []
    return got, {piece for piece in taken if piece}


# The sets below hold only the pieces whose API this pytest has (pytest_api.usable): a piece
# without one is never taken, pytest doing that work itself (the documented fallback).

#: Without plugin autoloading pytest looks the entry points up only for plugins named by ``-p``
#: or, where it does (pytest_api.PLUGINS_ENV_ENTRY_POINTS), by ``PYTEST_PLUGINS``: zeus names
#: its own plugin there in every command, so then in every run.
LOOKED_UP = {"entry-points"} if pytest_api.PLUGINS_ENV_ENTRY_POINTS else set()
#: What a command takes when nothing changed: the configuration, the rewrite names, the
#: entry points and the narrowed fixture scan of the preloaded plugin modules.
BOTH = pytest_api.usable({"config", "rewrite-names", "entry-points", "fixture-scan"})
#: A default plugin blocked, or the environment read changed: no prebuilt configuration.
SCAN = pytest_api.usable({"fixture-scan"}) | LOOKED_UP
#: Without plugin autoloading pytest marks no distribution for rewriting: nothing to replay.
CONFIG = pytest_api.usable({"config", "fixture-scan"}) | LOOKED_UP
#: As CONFIG, with a plugin named by ``-p``: every pytest looks the entry points up for it.
NAMED = CONFIG | pytest_api.usable({"entry-points"})
#: After a distribution changed: neither the rewrite names nor the entry points are replayed.
CHANGED = pytest_api.usable({"config", "fixture-scan"})
AUTOLOAD_OFF = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
#: What the phase writes to the master's log when it cannot prebuild the configuration.
NOT_PREPARED = "zeus: pytest's configuration is not prepared ahead"


def test_prepared_pieces_are_taken(proj: WarmProject) -> None:
    ready_pid(proj)
    got, taken = compare(proj, autoload=True)
    assert got.code == 1 and got.counts == {"failed": 1, "passed": 3}, got.out
    assert "warm-fixture: root conftest v1" in got.out
    assert "At index 2 diff: 3 != 4" in got.out  # the test module's asserts are rewritten
    assert "plugins: " in got.out  # the venv's entry-point plugins
    assert taken == BOTH
    # The one fallback the phase reports: pytest's get_config() without prog= (before 9.2).
    said = [line for line in proj.log.splitlines() if NOT_PREPARED in line]
    assert bool(said) == ("config" in pytest_api.MISSING), proj.log[-3000:]
    assert all("prog" in line for line in said), said
    got, taken = compare(proj)
    assert "plugins: " not in got.out
    assert taken == CONFIG
    _, taken = compare(proj, "-q", "tests/test_probe.py", ZEUSPY_PYTEST_WARM="0")
    assert taken == set()


def test_test_file_edit(proj: WarmProject) -> None:
    before = ready_pid(proj)
    edited = textwrap.dedent(FILES["tests/test_main.py"]).replace(
        "[1, 2, 3] == [1, 2, 4]", '{"a": 1} == {"a": 2}')
    write_files(proj.root, {"tests/test_main.py": edited + "\n\ndef test_new():\n    pass\n"})
    got, taken = compare(proj)
    assert got.counts == {"failed": 1, "passed": 4}, got.out
    assert "Differing items" in got.out
    assert taken == CONFIG
    assert phase_pid(proj) == before  # no phase loaded the test file


def test_nested_conftest_edit(proj: WarmProject) -> None:
    before = ready_pid(proj)
    write_files(proj.root, {"tests/conftest.py": FILES["tests/conftest.py"].replace('"a"', '"b"')})
    got, taken = compare(proj, "tests/test_main.py::test_nested", "tests/test_probe.py")
    assert got.counts == {"failed": 1, "passed": 1}, got.out
    assert "assert 'b' == 'a'" in got.out
    assert taken == CONFIG
    assert phase_pid(proj) == before


def test_root_conftest_adds_then_removes_a_plugin(proj: WarmProject) -> None:
    before = ready_pid(proj)
    write_files(proj.root, {"conftest.py": CONFTEST.format(
        plugins='pytest_plugins = ["localplug"]', version="v2", value=42)})
    before = ready_pid(proj, other_than=before)  # the phase executed the root conftest
    got, taken = compare(proj, "tests/test_main.py::test_root", "tests/test_probe.py")
    assert "warm-fixture: root conftest v2" in got.out and "localplug: loaded" in got.out
    assert got.counts == {"failed": 1, "passed": 1}, got.out
    assert taken == CONFIG
    write_files(proj.root, {"conftest.py": CONFTEST.format(plugins="", version="v3", value=41)})
    ready_pid(proj, other_than=before)
    got, taken = compare(proj, "tests/test_main.py::test_root", "tests/test_probe.py")
    assert "warm-fixture: root conftest v3" in got.out and "localplug" not in got.out
    assert got.counts == {"passed": 2}, got.out
    assert taken == CONFIG


@pytest.mark.parametrize(("args", "pieces"), [
    pytest.param(("-p", "localplug"), NAMED, id="plugin-named"),
    pytest.param(("-p", "no:cacheprovider"), SCAN, id="default-plugin-blocked"),
    pytest.param(("-pno:warnings",), SCAN, id="default-plugin-blocked-joined"),
])
def test_plugin_arguments(proj: WarmProject, args: tuple[str, ...], pieces: set[str]) -> None:
    ready_pid(proj)
    got, taken = compare(proj, *args, "tests/test_probe.py")
    assert got.counts == {"passed": 1}, got.out
    assert taken == pieces
    assert ("localplug: loaded" in got.out) == ("localplug" in args)


def test_environment_read_by_the_configuration(proj: WarmProject, tmp_path: Path) -> None:
    """pytest's cacheprovider reads TOX_ENV_DIR while the configuration is built: a command
    with another value than the phase builds its own (and writes its cache there)."""
    ready_pid(proj)
    tox = tmp_path / "tox"
    tox.mkdir()
    got, taken = compare(proj, "tests/test_probe.py", TOX_ENV_DIR=str(tox))
    assert got.counts == {"passed": 1}, got.out
    assert taken == SCAN
    assert (tox / ".pytest_cache").is_dir()


def test_pytest_main_inside_a_test(proj: WarmProject) -> None:
    """The prepared configuration serves the command's own run only: a second run in the same
    process (``pytest.main``, or pytest's script entry point again) builds its own."""
    ready_pid(proj)
    write_files(proj.root, {"tests/test_inner.py": f"""
        import sys

        import pytest


        def test_inner_run():
            code = pytest.main(["-q", "--rootdir", {str(proj.root)!r},
                                {str(proj.root / "inner")!r}])
            assert code == 1


        def test_inner_script_run(monkeypatch):
            import _pytest.config

            # The `pytest` script's entry point: _console_main since pytest 9.1 (which
            # deprecated calling console_main), console_main before.
            entry = (getattr(_pytest.config, "_console_main", None)
                     or _pytest.config.console_main)
            monkeypatch.setattr(sys, "argv", ["pytest", "-q", "--rootdir", {str(proj.root)!r},
                                              {str(proj.root / "inner")!r}])
            assert entry() == 1
        """})
    try:
        got, taken = compare(proj, "tests/test_inner.py", "tests/test_probe.py")
    finally:
        (proj.root / "tests" / "test_inner.py").unlink()
    assert got.counts == {"passed": 3}, got.out
    assert taken == CONFIG


def test_entry_point_plugin_installed_then_removed(proj: WarmProject) -> None:
    """No phase restarts (nothing it loaded changed); the commands see the plugin come and go,
    and mark its module for rewriting as pytest does (the plugin's failing assert is
    introspected)."""
    before = ready_pid(proj)
    write_files(proj.site, ENTRY_POINT_PLUGIN)
    write_files(proj.root, {"tests/test_plugin.py": """
        def test_uses_plugin(warm_checked):
            pass
        """})
    try:
        got, taken = compare(proj, "tests/test_plugin.py", "tests/test_probe.py",
                             autoload=True)
        assert "warmplug-0.1" in got.out and "warmplug: loaded" in got.out
        assert got.counts == {"errors": 1, "passed": 1}, got.out
        assert "assert 1 == 2" in got.out
        assert taken == CHANGED  # the distributions changed: pytest reads them itself
    finally:
        (proj.root / "tests" / "test_plugin.py").unlink()
        for rel in ENTRY_POINT_PLUGIN:
            (proj.site / rel).unlink()
        (proj.site / "warmplug-0.1.dist-info").rmdir()
    got, taken = compare(proj, "tests/test_probe.py", autoload=True)
    assert "warmplug" not in got.out
    assert taken == BOTH  # the distributions are those the phase recorded again
    assert phase_pid(proj) == before


def test_plugin_metadata_held_then_upgraded_in_place(proj: WarmProject) -> None:
    """A plugin the phase recorded: the header's name and version come from the metadata the
    phase read and parsed; a new METADATA in the same folder (an upgrade in place, which
    restarts no phase) is read by the next run, as pytest would."""
    before = ready_pid(proj)
    write_files(proj.site, ENTRY_POINT_PLUGIN)
    conftest = (proj.root / "conftest.py").read_text()
    try:
        write_files(proj.root, {"conftest.py": conftest + "\n# the phase records warmplug\n"})
        before = ready_pid(proj, other_than=before)
        got, taken = compare(proj, "tests/test_probe.py", autoload=True)
        assert "warmplug-0.1" in got.out, got.out
        assert taken == BOTH
        write_files(proj.site, {"warmplug-0.1.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: warmplug\nVersion: 0.2\n")})
        got, taken = compare(proj, "tests/test_probe.py", autoload=True)
        assert "warmplug-0.2" in got.out and "warmplug-0.1" not in got.out, got.out
        assert taken == CHANGED
        assert phase_pid(proj) == before
    finally:
        write_files(proj.root, {"conftest.py": conftest})
        for rel in ENTRY_POINT_PLUGIN:
            (proj.site / rel).unlink()
        (proj.site / "warmplug-0.1.dist-info").rmdir()
        ready_pid(proj, other_than=before)


def test_pyproject_edit(proj: WarmProject) -> None:
    """Last: it leaves pyproject.toml edited (putting it back costs another restart)."""
    before = ready_pid(proj)
    text = FILES["pyproject.toml"].replace(
        'markers = ["slow: a slow test"]',
        'markers = ["slow: a slow test"]\n        addopts = "-rA -p localplug"')
    write_files(proj.root, {"pyproject.toml": text})
    before = ready_pid(proj, other_than=before)  # boot read pyproject.toml: all restart
    got, taken = compare(proj, "tests/test_probe.py", "tests/test_main.py::test_root")
    assert "PASSED tests/test_probe.py::test_probe" in got.out  # -rA
    assert "localplug: loaded" in got.out
    assert taken == NAMED  # addopts names localplug with -p
