"""Which pieces of zeus's warm pytest start-up the installed pytest lets a command take.

The test_environment phase prepares parts of a pytest run's start-up ahead
(``zeuspy.plans.pytest_warm``, ``pytest_fixture_scan``, ``pytest_rewrite``); each piece leans on
a pytest API that only newer pytest versions have (9.2; the project allows pytest>=8). Where the
API is missing the documented fallback applies: the piece is not taken and pytest does that work
itself in each run, so the output is still plain pytest's.

Each check below probes the very API the product's piece depends on (not pytest's version
number), in this process: the tests run on the interpreter whose environment the phases and
plain pytest run, so it is the same pytest. The pieces are named as ``pytest_warm.used`` and the
test probes name them; :data:`MISSING` says, for each piece this pytest lacks, why, naming the
API (a skip's reason, too).
"""

from __future__ import annotations

import importlib.util
import inspect
import tempfile
from pathlib import Path

import pytest


def _get_config_takes_prog() -> bool:
    """``_pytest.config.get_config(prog=...)``: ``pytest_warm._build_config`` builds the
    configuration with it (else the phase logs "pytest's configuration is not prepared ahead")."""
    import _pytest.config

    return "prog" in inspect.signature(_pytest.config.get_config).parameters


def _tells_editable_installs() -> bool:
    """``_pytest.config._is_editable_install``: without it ``pytest_warm._editable_plugin``
    cannot tell an editable plugin, so the plugins' rewrite names are not recorded."""
    import _pytest.config

    return hasattr(_pytest.config, "_is_editable_install")


def _parsefactories_takes_holder() -> bool:
    """``FixtureManager.parsefactories(holder=...)``: the keyword
    ``pytest_fixture_scan.install`` needs to hand pytest's scan a stand-in module."""
    from _pytest.fixtures import FixtureManager

    return "holder" in inspect.signature(FixtureManager.parsefactories).parameters


class _PassHookOff:
    """The configuration ``pytest_rewrite`` hands pytest's rewrite: the one setting it reads,
    and a failure for any other (then the phase holds nothing)."""

    def getini(self, name: str) -> object:
        if name != "enable_assertion_pass_hook":
            raise KeyError(name)
        return False


def _rewrite_gives_source_hash() -> bool:
    """Whether ``_pytest.assertion.rewrite._rewrite_test`` returns (source hash, code):
    ``pytest_rewrite.learn`` holds code only when that hash is the file's (older pytest returns
    an ``os.stat_result`` there, so every lesson is refused and each run rewrites itself)."""
    from _pytest.assertion import rewrite

    source = b"def test_probe():\n    assert True\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "test_probe.py"
        path.write_bytes(source)
        try:
            made = rewrite._rewrite_test(path, _PassHookOff())  # type: ignore[arg-type]
        except Exception:  # as in the phase: a rewrite that fails is never held
            return False
    return bool(made[0] == importlib.util.source_hash(source))


def _plugins_env_looks_up_entry_points() -> bool:
    """Whether pytest looks the ``pytest11`` entry points up for the names in ``PYTEST_PLUGINS``
    (``import_plugin(..., consider_entry_points=True)``, as it always does for ``-p NAME``)."""
    from _pytest.config import PytestPluginManager

    asked: list[bool] = []

    def import_plugin(modname: str, consider_entry_points: bool = False) -> None:
        asked.append(consider_entry_points)

    manager = PytestPluginManager()
    # On this instance only: records what PYTEST_PLUGINS's handling asks, importing nothing.
    manager.import_plugin = import_plugin  # type: ignore[method-assign]
    manager._import_plugin_specs("a_plugin")
    return asked == [True]


#: Each piece whose pytest API is missing here -> why it is not taken (the API named).
MISSING: dict[str, str] = {name: reason for name, (present, reason) in {
    "config": (_get_config_takes_prog(),
               "pytest's get_config() takes no prog= (pytest < 9.2): the phase prepares no "
               "configuration, each run builds its own"),
    "rewrite-names": (_tells_editable_installs(),
                      "pytest has no _pytest.config._is_editable_install (pytest < 9.2): the "
                      "plugins' rewrite names are not held, each run computes them"),
    "fixture-scan": (_parsefactories_takes_holder(),
                     "pytest's FixtureManager.parsefactories takes no holder= (pytest < 9.2): "
                     "each run scans the plugin modules whole"),
    "held-rewrites": (_rewrite_gives_source_hash(),
                      "pytest's _rewrite_test returns no source hash (pytest < 9.2): the phase "
                      "holds no rewritten module, each run rewrites its own"),
}.items() if not present}

#: Not a piece of zeus's but pytest's own behaviour: with plugin autoloading off, whether a run
#: looks the entry points up (so that the recorded ones can be replayed) even when no ``-p NAME``
#: asks: zeus names its own plugin in ``PYTEST_PLUGINS`` in every command.
PLUGINS_ENV_ENTRY_POINTS = _plugins_env_looks_up_entry_points()


def usable(pieces: set[str]) -> set[str]:
    """``pieces`` without those whose pytest API is missing here."""
    return pieces - MISSING.keys()


def needs(piece: str) -> pytest.MarkDecorator:
    """Skip a test that is only about ``piece`` being taken when this pytest lacks its API."""
    return pytest.mark.skipif(piece in MISSING, reason=MISSING.get(piece, ""))
