"""pytest in a phase and in commands: ``preload`` warms a ``test_environment`` phase, ``run`` is
the ``pytest`` command line.

Plugins installed with a ``pytest11`` entry point are imported through pytest's own assertion
rewriting hook, as pytest itself imports them: imported plainly, pytest would warn in every run
that they "cannot be rewritten". The root ``conftest.py`` is executed once so that what it imports
is loaded; pytest imports conftest files anew in each run (it always has), which is then cheap.
What the phase prepares of a run's own start-up is in :mod:`zeuspy.plans.pytest_warm`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from zeuspy.plans import pyrun, pytest_warm

AUTOLOAD_OFF_ENV = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


def installed() -> bool:
    """Whether pytest can be imported here."""
    return importlib.util.find_spec("pytest") is not None


def preload(root: Path) -> None:
    """Import pytest, its built-in plugins, the installed plugins and what the root conftest.py
    imports, with pytest's assertion rewriting hook in place (as in a pytest run), so that what
    pytest would rewrite is rewritten: the plugins, and modules the conftest registers with
    ``pytest.register_assert_rewrite``. A plugin that fails to import raises, as it would make
    every pytest run fail."""
    import pytest  # noqa: F401
    from _pytest.config import default_plugins

    for name in default_plugins:
        try:
            importlib.import_module(f"_pytest.{name}")
        except ImportError:  # a name that is not a module in this pytest version
            pass
    # The debugging plugin imports pdb in every run's pytest_configure (2-4 ms on the heavy
    # bench); importing it has no other effect. (readline is left to the run: pytest imports it
    # itself, on purpose, once the run's stdio is in place.)
    importlib.import_module("pdb")
    # Every run imports it (`-n`, and the check for it): a module of 800 lines.
    importlib.import_module("zeuspy.plans.pytest_workers")
    config, hook = _rewriting_hook()
    try:
        if not os.environ.get(AUTOLOAD_OFF_ENV):
            _load_plugins(config, hook)
        conftest = root / "conftest.py"
        if conftest.is_file():
            _execute(conftest, hook)
    finally:
        if config is not None:
            config._ensure_unconfigure()  # takes the hook off sys.meta_path
    _warm_inspect()
    pytest_warm.prepare()


def _warm_inspect() -> None:
    """Fill ``inspect``'s module-by-file caches now: pytest's report of a failure calls
    ``inspect.getmodule``, which otherwise resolves the path of every loaded module (tens of
    milliseconds in every failing run on a large stack); a fork then only adds the new ones."""
    import inspect

    inspect.getmodule(_warm_inspect.__code__)


def _rewriting_hook() -> tuple[Any, Any]:
    """(a bare pytest config, its assertion rewriting hook on ``sys.meta_path``), or
    (None, None) when pytest's internals moved (then modules load without rewriting, and pytest
    may warn that they were imported before it could rewrite them)."""
    try:
        from _pytest.assertion import install_importhook
        from _pytest.config import get_config

        config = get_config()
        if not hasattr(config, "_inicfg"):
            # pytest before 9.2 reads no ini file until it parses a command line, and its
            # rewriting hook asks for python_files at once: the defaults answer (the phase
            # rewrites plugins, not test files).
            config._inicfg = {}
        return config, install_importhook(config)
    except Exception as exc:
        print(f"zeus: preloading pytest without assertion rewriting: {exc!r}", file=sys.stderr)
        return None, None


def _load_plugins(config: Any, hook: Any) -> None:
    entry_points = list(importlib.metadata.entry_points(group="pytest11"))
    if not entry_points:
        return
    packages: set[str] = set()
    if hook is not None:
        try:
            # pytest's own method, through a recorder: commands replay the names (pytest_warm).
            packages = set(pytest_warm.rewrite_names(config))
            hook.mark_rewrite(*packages)
            config.pluginmanager.rewrite_hook = hook
        except Exception as exc:
            print(f"zeus: pytest plugins' packages are not preloaded: {exc!r}", file=sys.stderr)
    for entry_point in entry_points:
        entry_point.load()
    # A plugin often imports its package only when a hook first runs (hypothesis does, in its
    # terminal summary): load the plugins' packages now, while the hook rewrites them.
    for name in sorted(packages):
        try:
            importlib.import_module(name)
        except Exception as exc:
            print(f"zeus: not preloading {name}, a pytest plugin's package: {exc!r}",
                  file=sys.stderr)


def _execute(conftest: Path, hook: Any) -> None:
    spec = importlib.util.spec_from_file_location("conftest", conftest, loader=hook)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["conftest"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        # pytest imports each conftest itself and drops a same-named module first anyway.
        sys.modules.pop("conftest", None)


def _pytest_script() -> str:
    """The path of the ``pytest`` script beside this interpreter (what ``pytest`` runs in its
    environment), else ``pytest``."""
    script = os.path.join(os.path.dirname(sys.executable), "pytest")
    return script if os.path.isfile(script) else "pytest"


def run(argv: list[str], plugins: tuple[str, ...] = ()) -> int:
    """``pytest ARGS``, as the ``pytest`` script runs it (its entry point: exit status, output
    flushed, a closed pipe handled), with the plugin modules ``plugins`` of zeus's loaded as
    ``PYTEST_PLUGINS`` loads them. Status 1 with a message when pytest is not installed."""
    if not installed():
        print(f"zeus: pytest is not installed for {sys.executable}; install it in this "
              "environment (pip install pytest) and the test_environment phase loads it",
              file=sys.stderr)
        return 1
    # As the `pytest` script runs: argv[0] the script's path, and the interpreter's command
    # line the script's `#!` line makes (the script of this environment's interpreter).
    script = _pytest_script()
    pyrun.become_script(script, script, argv)  # __main__ too: multiprocessing's spawn reads it
    from _pytest import config

    from zeuspy.plans import pytest_workers

    # `-n N` on warm workers: pytest imports the plugin named there after the entry-point
    # plugins (so it sees whether pytest-xdist is loaded); it puts the user's value back at once.
    pytest_workers.install(plugins)
    try:
        # The `pytest` script's own entry point: `_console_main` since pytest 9.1,
        # `console_main` before (9.1 deprecated calling that one), `main` as a last resort.
        entry = getattr(config, "_console_main", None) or getattr(config, "console_main", None)
        if entry is not None:
            return int(entry())
        code = int(config.main(argv))
        sys.stdout.flush()
        return code
    finally:
        pytest_workers.restore_env()  # when pytest stopped before importing the plugin
