"""Parts of a pytest run's start-up that the ``test_environment`` phase does ahead of time.

Every command is a fresh fork of the phase, so an object the phase builds is pristine in each
command: pytest consumes it once, in that process only. Three pieces, each taken only when the
command's inputs are those it was built from, else pytest does the work itself as usual:

- **A configuration with pytest's default plugins registered** (what ``get_config`` builds
  before reading the command line: a plugin manager, ~30 plugin modules registered, their
  options added). Taken when the command line blocks no plugin (``-p no:NAME``), no plugin
  object is passed in, the program name is the same and every environment variable read while
  it was built (``PYTEST_DEBUG``, ``TOX_ENV_DIR``, ...) has the same value in the command. The
  command's own arguments and folder are then set on it, as ``get_config`` would have.
- **The modules that installed plugins' distributions ask to be rewritten** (what
  ``Config._mark_plugins_for_rewrite`` computes by reading every distribution's entry points
  and each plugin's file list). The names are recorded with pytest's own method in the phase
  and replayed on the run's real hook while the distributions found on ``sys.path`` are the
  same and no metadata file pytest reads changed (a stat of each distribution's folder and of
  the files pytest reads in it: a plugin installed, upgraded or removed changes them). Not
  recorded when a plugin is an editable install (its names depend on where its sources are).

- **The installed plugins' entry points** (pluggy's ``load_setuptools_entrypoints`` lists every
  distribution's entry points in each run, and again for each ``-p NAME``): the ``pytest11``
  ones are recorded in the phase, in pluggy's order, and replayed through pluggy's own loading
  while the metadata is unchanged (the same key as the rewrite names). Each plugin's
  distribution is recorded with its ``METADATA`` file read and parsed (the header's ``plugins:``
  line asks each one for its name and version, and the standard library reads and parses the
  file at every ask: 17 parses, about 3 ms of every run on the heavy bench).

A fourth piece, the narrowed fixture scan of the preloaded plugin modules, is
:mod:`zeuspy.plans.pytest_fixture_scan` (installed and indexed from :func:`prepare`), and a
fifth, the test modules' rewritten code the phase holds when pytest cannot keep it in
``__pycache__``, is :mod:`zeuspy.plans.pytest_rewrite` (installed from :func:`prepare`).

Measured on the heavy-stack fixture (bench/heavy.py, 2 cores): unprepared, ``get_config`` cost
12 ms of a 206 ms ``zeus pytest tests/test_one.py`` and the rewrite marking 12 ms; prepared,
``get_config`` costs 0.3 ms and the marking is left with pytest's own scan of ``sys.modules``
(copy-on-write faults: each key it touches is a page the fork copies).
"""

from __future__ import annotations

import email
import email.message
import importlib.metadata
import os
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

from zeuspy.plans import pytest_fixture_scan, pytest_rewrite

#: Files of a plugin distribution's metadata folder that ``_mark_plugins_for_rewrite`` reads
#: besides ``entry_points.txt`` (its file list, and whether it is an editable install), and the
#: metadata the phase holds (:class:`_HeldDistribution`).
PLUGIN_FILES = ("RECORD", "installed-files.txt", "SOURCES.txt", "direct_url.json", "METADATA")
#: The program name pytest gives its parser when run as the ``pytest`` script (``run``).
PROG = "pytest"
#: ``ZEUSPY_PYTEST_WARM=0`` in a command's environment: pytest does all its start-up itself.
ENABLE_ENV = "ZEUSPY_PYTEST_WARM"

#: The pieces the current command took ("config", "rewrite-names"): for tests and debugging.
used: set[str] = set()

_config: Any = None
_env_read: dict[str, str | None] | None = None
_rewrite_names: list[str] | None = None
_rewrite_key: tuple[object, ...] | None = None
_rewrite_plugins: frozenset[str] = frozenset()
_original_get_config: Any = None
_original_mark: Any = None
_original_load: Any = None
#: The ``pytest11`` entry points with their distributions, in pluggy's order, and the metadata
#: key they were read under (None: not recorded).
_entry_points: list[tuple[Any, Any]] | None = None
_entry_key: tuple[object, ...] | None = None
#: (pid, key): the metadata key computed once per process (a command checks it twice).
_key_now: tuple[int, tuple[object, ...] | None] | None = None


# -- environment reads ----------------------------------------------------------------------------
class _EnvRecorder(MutableMapping[str, str]):
    """``os.environ`` while the configuration is built: records each variable read (its value,
    None when unset). Anything it cannot attribute to named variables (listing the whole
    environment, a write) marks the record unusable."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real
        self.read: dict[str, str | None] = {}
        self.usable = True

    def __getitem__(self, key: str) -> str:
        self.read[key] = self.real.get(key)
        return self.real[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read[key] = self.real.get(key)
        return key in self.real

    def __iter__(self) -> Iterator[str]:
        self.usable = False
        return iter(self.real)

    def __len__(self) -> int:
        self.usable = False
        return len(self.real)

    def __setitem__(self, key: str, value: str) -> None:
        self.usable = False
        self.real[key] = value

    def __delitem__(self, key: str) -> None:
        self.usable = False
        del self.real[key]

    def copy(self) -> dict[str, str]:
        self.usable = False
        return dict(self.real)


def enabled() -> bool:
    """Whether this command may take what the phase prepared (:data:`ENABLE_ENV`)."""
    return os.environ.get(ENABLE_ENV, "1") != "0"


def _same_env(read: dict[str, str | None]) -> bool:
    return all(os.environ.get(key) == value for key, value in read.items())


# -- the prebuilt configuration -------------------------------------------------------------------
def _build_config() -> None:
    """Build the configuration ``get_config`` would (no arguments yet), recording the
    environment variables read meanwhile. ``_main`` sets ``PYTEST_VERSION`` before it calls
    ``get_config``; so does this."""
    global _config, _env_read
    import _pytest.config
    from _pytest import __version__

    real: Any = os.environ
    recorder = _EnvRecorder(real)
    had_version = real.get("PYTEST_VERSION")
    real["PYTEST_VERSION"] = __version__
    # Rebinding (not clearing) is the point: os.getenv and os.environ.get read it meanwhile.
    os.environ = recorder  # type: ignore[assignment]  # noqa: B003
    try:
        config = _pytest.config.get_config(prog=PROG)
    finally:
        os.environ = real  # noqa: B003
        if had_version is None:
            real.pop("PYTEST_VERSION", None)
        else:
            real["PYTEST_VERSION"] = had_version
    if recorder.usable:
        _config, _env_read = config, recorder.read


def _blocks_plugin(args: Any) -> bool:
    """Whether ``get_config`` would act on ``args``: a ``-p no:NAME`` (or anything it cannot
    tell from one), which blocks a default plugin before it is registered."""
    if not isinstance(args, list):
        return True
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            return True
        if arg == "-p":
            following = args[index + 1] if index + 1 < len(args) else ""
            if not isinstance(following, str) or following.strip().startswith("no:"):
                return True
        elif arg.startswith("-p") and "no:" in arg:
            return True
    return False


def _get_config(args: Any = None, plugins: Any = None, *, prog: str | None = None) -> Any:
    """``_pytest.config.get_config`` in a command: the prebuilt configuration, once, when it is
    what the original would build for these arguments; otherwise (and on every later call,
    e.g. ``pytest.main`` inside a test) the original."""
    import _pytest.config

    global _config
    original = _original_get_config
    _pytest.config.get_config = original
    config, _config = _config, None
    if (not enabled() or config is None or plugins or prog != PROG or _blocks_plugin(args)
            or _env_read is None or not _same_env(_env_read)):
        return original(args, plugins, prog=prog)
    used.add("config")
    config.invocation_params = _pytest.config.Config.InvocationParams(
        args=args or (), plugins=plugins, dir=Path.cwd())
    return config


# -- the plugins' modules to rewrite --------------------------------------------------------------
class _NameRecorder:
    """Stands in for the assertion rewriting hook: records the names it is asked to mark."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def mark_rewrite(self, *names: str) -> None:
        self.names.extend(names)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def metadata_key(plugins: frozenset[str]) -> tuple[object, ...] | None:
    """What ``_mark_plugins_for_rewrite``'s answer depends on, now: the distributions found on
    ``sys.path`` (importlib lists a folder again only when its mtime changed), a stat of each
    one's entry points (a pytest11 entry point added or removed), and for those in ``plugins``
    (the folders of the distributions that had pytest plugins) a stat of the file lists pytest
    reads. None when a distribution is not a folder (another finder's). Other files in the
    folders of ``sys.path`` (the project root's, say) do not count."""
    parts: list[object] = []
    for dist in importlib.metadata.distributions():
        folder = getattr(dist, "_path", None)
        if folder is None:
            return None
        base = os.fspath(folder)
        parts.append(base)
        parts.append(_stat(os.path.join(base, "entry_points.txt")))
        if base in plugins:
            parts.extend(_stat(os.path.join(base, name)) for name in PLUGIN_FILES)
    return tuple(parts)


def _current_key() -> tuple[object, ...] | None:
    """:func:`metadata_key` of the recorded plugin folders, computed once per process."""
    global _key_now
    if _key_now is None or _key_now[0] != os.getpid():
        _key_now = (os.getpid(), metadata_key(_rewrite_plugins))
    return _key_now[1]


def _plugin_folders() -> frozenset[str]:
    return frozenset(os.fspath(getattr(dist, "_path", ""))
                     for dist in importlib.metadata.distributions()
                     if any(ep.group == "pytest11" for ep in dist.entry_points))


def _record_rewrite_names(config: Any) -> list[str]:
    """The names pytest's own ``_mark_plugins_for_rewrite`` marks for the installed plugins."""
    global _rewrite_names, _rewrite_key, _rewrite_plugins
    from _pytest.config import Config

    recorder = _NameRecorder()
    saved = config.pluginmanager.rewrite_hook
    try:
        mark: Any = _original_mark or Config._mark_plugins_for_rewrite
        mark(config, recorder, False)
    finally:
        config.pluginmanager.rewrite_hook = saved
    # The plugins' folders key the held entry points too (their metadata is held): recorded
    # even when the names are not held.
    _rewrite_plugins = _plugin_folders()
    _rewrite_key = metadata_key(_rewrite_plugins)
    held = _rewrite_key is not None and not _editable_plugin()
    _rewrite_names = list(recorder.names) if held else None
    return recorder.names


def _editable_plugin() -> bool:
    """Whether a plugin is installed editable (its modules can change without its metadata),
    or, with a pytest before 9.2 (no ``_is_editable_install``), whether that cannot be told:
    then the names are not held, and each command's pytest finds them itself."""
    try:
        from _pytest.config import _is_editable_install
    except ImportError:
        return True

    for dist in importlib.metadata.distributions():
        if any(ep.group == "pytest11" for ep in dist.entry_points) and _is_editable_install(dist):
            return True
    return False


def _mark_plugins_for_rewrite(self: Any, hook: Any, disable_autoload: bool) -> None:
    """``Config._mark_plugins_for_rewrite`` in a command: the recorded names, marked on the
    run's hook in the recorded order, while the metadata they came from is unchanged."""
    original = _original_mark
    if (not enabled() or disable_autoload or _rewrite_names is None
            or _current_key() != _rewrite_key):
        original(self, hook, disable_autoload)
        return
    original(self, hook, True)  # pytest's own: hands the hook to the plugin manager
    used.add("rewrite-names")
    if _rewrite_names:
        # One call, not one per name: each call scans sys.modules (ms on a large stack).
        hook.mark_rewrite(*_rewrite_names)


# -- the entry points -----------------------------------------------------------------------------
class _HeldDistribution(importlib.metadata.PathDistribution):
    """A plugin's distribution whose metadata file the phase read and parsed: ``metadata`` is
    the standard library's wrapper around that message, new at each access as the standard
    library's is, without reading and parsing the file again. Everything else is the plain
    distribution's (it is one, on the same folder)."""

    def __init__(self, path: Any, parsed: email.message.Message, wrapper: Any) -> None:
        super().__init__(path)
        self._parsed = parsed
        self._wrapper = wrapper

    @property
    def metadata(self) -> Any:  # the standard library's own type: PackageMetadata
        return self._wrapper(self._parsed)


def _held(dist: Any) -> Any:
    """``dist`` with its metadata held (:class:`_HeldDistribution`), or ``dist`` itself when it
    is not a plain folder distribution or the held metadata would not read exactly as its own
    (the standard library reading it another way)."""
    if type(dist) is not importlib.metadata.PathDistribution:
        return dist
    try:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
        own: Any = dist.metadata
        if not text or own is None:
            return dist
        held = _HeldDistribution(dist._path, email.message_from_string(text), type(own))
        return held if list(held.metadata.items()) == list(own.items()) else dist
    except Exception:  # unreadable, or the wrapper moved: pluggy's own distribution
        return dist


def _record_entry_points() -> None:
    """In the phase: the ``pytest11`` entry points as pluggy would walk them (with their
    distributions' metadata held), and their key."""
    global _entry_points, _entry_key, _rewrite_plugins, _key_now
    found = []
    for dist in list(importlib.metadata.distributions()):
        plugins = [ep for ep in dist.entry_points if ep.group == "pytest11"]
        if plugins:
            held = _held(dist)
            found += [(held, entry_point) for entry_point in plugins]
    if not _rewrite_plugins and found:
        # No rewrite names were recorded (no rewriting hook): the key must still see a held
        # distribution's metadata change in place.
        _rewrite_plugins = _plugin_folders()
        _key_now = None
    key = _current_key()
    if key is not None:
        _entry_points, _entry_key = found, key


def _replayable(manager: Any) -> bool:
    """Whether pluggy's loading is the loop :func:`_load_setuptools_entrypoints` replays: the
    pluggy versions that keep plain distributions in ``_plugin_distinfo`` (1.6 and later; older
    ones wrapped each in a ``DistFacade``). Read from its source once, in the phase."""
    import inspect

    try:
        source = inspect.getsource(manager.load_setuptools_entrypoints)
    except (AttributeError, OSError, TypeError):
        return False
    return "self._plugin_distinfo.append((plugin, dist))" in source


def _load_setuptools_entrypoints(self: Any, group: str, name: str | None = None) -> int:
    """pluggy's ``PluginManager.load_setuptools_entrypoints`` in a command: for ``pytest11``,
    pluggy's loop over the recorded entry points while the metadata is unchanged; otherwise
    (another group, a change, a manager without pluggy's bookkeeping) the original."""
    if (group != "pytest11" or not enabled() or _entry_points is None
            or not hasattr(self, "_plugin_distinfo") or _current_key() != _entry_key):
        return int(_original_load(self, group, name=name))
    used.add("entry-points")
    count = 0
    for dist, entry_point in _entry_points:
        if ((name is not None and entry_point.name != name) or self.has_plugin(entry_point.name)
                or self.is_blocked(entry_point.name)):
            continue
        plugin = entry_point.load()
        self.register(plugin, name=entry_point.name)
        self._plugin_distinfo.append((plugin, dist))
        count += 1
    return count


# -- the plugin modules' fixture scan -------------------------------------------------------------
def _plugin_modules() -> list[ModuleType]:
    """The modules a run registers as plugins whatever its arguments: pytest's default plugins
    (those of the prebuilt configuration) and the installed plugins (already imported)."""
    found: list[ModuleType] = []
    if _config is not None:
        found += [p for p in _config.pluginmanager.get_plugins() if isinstance(p, ModuleType)]
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        for entry_point in importlib.metadata.entry_points(group="pytest11"):
            try:
                plugin = entry_point.load()
            except Exception:  # pytest reports it in the run
                continue
            if isinstance(plugin, ModuleType):
                found.append(plugin)
    return found


# -- entry points ---------------------------------------------------------------------------------
def rewrite_names(config: Any) -> list[str]:
    """In the phase, with pytest's bare ``config`` of the preload: the module names the
    installed plugins' distributions have rewritten (recorded for the commands too)."""
    return _record_rewrite_names(config)


def prepare() -> None:
    """In the phase, after the preload: build the configuration, index the plugin modules'
    fixtures and put the stand-ins for pytest's functions in place, for the commands forked
    from here. Nothing (each piece on its own) when pytest's internals moved."""
    global _original_get_config, _original_mark, _original_load
    import _pytest.config
    import pluggy

    if not (hasattr(_pytest.config, "get_config")
            and hasattr(_pytest.config.Config, "_mark_plugins_for_rewrite")):
        return
    config_class: Any = _pytest.config.Config
    if _original_mark is None:
        _original_mark = config_class._mark_plugins_for_rewrite
        config_class._mark_plugins_for_rewrite = _mark_plugins_for_rewrite
    manager: Any = pluggy.PluginManager
    if _original_load is None and _replayable(manager):
        _record_entry_points()
        _original_load = manager.load_setuptools_entrypoints
        manager.load_setuptools_entrypoints = _load_setuptools_entrypoints
    try:
        _build_config()
    except Exception as exc:  # a run builds it again, and meets the same error as pytest would
        print(f"zeus: pytest's configuration is not prepared ahead: {exc!r}", file=sys.stderr)
    if pytest_fixture_scan.install():
        pytest_fixture_scan.index(_plugin_modules())
    else:
        print("zeus: the plugins' fixtures are not indexed ahead: this pytest's fixture "
              "manager is not the one zeus knows (pytest < 9.2?)", file=sys.stderr)
    if not pytest_rewrite.install():
        print("zeus: test modules' rewritten code is not held: this pytest's assertion "
              "rewrite is not the one zeus knows (pytest < 9.2?)", file=sys.stderr)
    if _config is not None:
        _original_get_config = _pytest.config.get_config
        _pytest.config.get_config = _get_config
