"""``zeus pytest -n N``: the suite on N warm workers forked from the command after collection.

A pytest plugin, registered by :func:`zeuspy.plans.pytest_support.run` through ``PYTEST_PLUGINS``
(pytest imports those after the entry-point plugins, so this one knows whether pytest-xdist is
there). Under zeus, ``-n N`` / ``-n auto`` / ``-n logical`` / ``-n 0`` mean this whether
pytest-xdist is installed or not: xdist's own session is switched off.

How a run goes:

* The command process (the *controller*) collects once, then forks the workers, which inherit the
  collected items. Item indices are handed out one at a time, on request, from one shared queue
  (``--dist load``/``worksteal``); ``loadfile``/``loadscope``/``loadgroup`` hand out whole groups
  (module, module-or-class, ``xdist_group`` mark) to one worker each.
* A worker always knows the item after the one it runs, so that it runs each with the right
  ``nextitem`` (fixtures of a scope that goes on stay up; ``None`` for its last item tears the
  session down once per worker): as it starts an item it asks for one more index, and the answer
  arrives while the item runs (no round trip between two tests), except near the end of the
  queue, where the answer waits until the worker has run its item (no worker holds tests back
  while another idles). Its reporting hooks are cut down to a forwarder: the reports of an item
  go to the controller together, after the item.
* Only the controller reports: it replays each item's events through its own hooks (terminal,
  junitxml, cache, user conftest hooks), so there is one report with serial counts and tracebacks.
* A worker that dies mid-test fails that test with a line saying how it died, and a replacement is
  forked (at most ``--max-worker-restart``). ^C stops every worker (one that says it stopped
  may tear its fixtures down as long as serially; a silent one is interrupted, then killed),
  reaps all, and ends like pytest does (partial report, status 2).

Wire: one socketpair per worker; each message is a 4-byte length and a pickle (see "wire").

PYTEST_DONT_REWRITE: run() imports this module before pytest does (pytest would warn that it
"cannot be rewritten"; it has no assert to rewrite).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
import time
import types
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any, Literal

import pytest

PLUGINS_ENV = "PYTEST_PLUGINS"
#: The user's own PYTEST_PLUGINS while ours is in place (None: it was unset); ``_armed``: ours is.
_user_plugins: str | None = None
_armed = False

#: The hooks a worker keeps to its forwarder only: everything that reports lives in the controller.
REPORT_HOOKS = ("pytest_runtest_logstart", "pytest_runtest_logreport", "pytest_runtest_logfinish",
                "pytest_warning_recorded")
#: xdist's modes and what each becomes here (None: refused).
MODES: dict[str, str | None] = {"load": "load", "worksteal": "load", "loadfile": "loadfile",
                                "loadscope": "loadscope", "loadgroup": "loadgroup", "no": "no",
                                "each": None}
#: After ^C, how long workers (which got the terminal's SIGINT too) may take to stop by themselves
#: before the controller sends them SIGINT: tearing down a test's fixtures usually takes less.
INTERRUPT_GRACE = 0.5
#: After that SIGINT, how long they may take (fixture teardown included) before SIGKILL.
STOP_TIMEOUT = 5.0
#: How long a worker whose socket closed may take to exit before it is killed.
REAP_TIMEOUT = 2.0
#: How long a worker that said goodbye may take to exit (saving coverage data) before SIGKILL.
FINISH_TIMEOUT = 30.0
#: How long a worker waits for a daemonic multiprocessing child it ends, as python's exit does.
CHILD_TIMEOUT = 1.0
#: How often the controller looks for the exit of workers that said goodbye (they exit at once).
EXIT_POLL = 0.002
#: How often the controller's loop wakes up when nothing arrives (checks deadlines only).
TICK = 0.1
HEADER = struct.Struct(">I")
#: zeuspy.shim.process's switch: 0 forks the workers without ``gc.freeze()`` (to measure it).
GC_FREEZE_ENV = "ZEUSPY_GC_FREEZE"

Mode = Literal["load", "loadfile", "loadscope", "loadgroup"]
#: In a worker, its pid: a process a test forked from it must not speak on its socket.
_worker_pid: int | None = None


# -- PYTEST_PLUGINS: ours only until pytest imported us -------------------------------------------
def install(plugins: tuple[str, ...] = ()) -> None:
    """Put this module and ``plugins`` (more modules of zeus's) in ``PYTEST_PLUGINS``, before
    the user's own list, kept for later: pytest imports them as it imports the user's, without a
    ``-p`` in the command line that tests would see (``sys.argv``, ``invocation_params``)."""
    global _user_plugins, _armed
    _user_plugins = os.environ.get(PLUGINS_ENV)
    _armed = True
    os.environ[PLUGINS_ENV] = ",".join(filter(None, (__name__, *plugins, _user_plugins)))


def restore_env() -> None:
    """Give ``PYTEST_PLUGINS`` back its user's value (idempotent): tests and the subprocesses
    they start must not load this plugin."""
    global _armed
    if not _armed:
        return
    _armed = False
    if _user_plugins is None:
        os.environ.pop(PLUGINS_ENV, None)
    else:
        os.environ[PLUGINS_ENV] = _user_plugins


# -- options --------------------------------------------------------------------------------------
def parse_numprocesses(text: str) -> int | Literal["auto", "logical"]:
    """xdist's ``-n`` value: a count, ``auto`` or ``logical``."""
    if text in ("auto", "logical"):
        return text  # type: ignore[return-value]
    return int(text)


def xdist_registered(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-xdist's plugin is loaded in this run (then it defines ``-n`` and friends)."""
    return any(getattr(plugin, "__name__", None) == "xdist.plugin"
               for plugin in pluginmanager.get_plugins())


class AutoWorkersSpec:
    """xdist's hook for ``-n auto``, declared here when xdist is not loaded, so that a plugin or
    conftest implementing it is called (and accepted) without xdist too."""

    @pytest.hookspec(firstresult=True)
    def pytest_xdist_auto_num_workers(self, config: pytest.Config) -> int:  # type: ignore[empty-body]
        """The number of workers for ``-n auto``/``-n logical``."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    if not xdist_registered(pluginmanager):
        pluginmanager.add_hookspecs(AutoWorkersSpec)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Iterator[None]:
    """Hide ``-n`` and ``--dist`` from the plugins that read them this early. pytest-cov does:
    it would set itself up as xdist's controller (waiting for data that xdist's hooks bring),
    where under zeus it must measure as in a serial run, the workers being forks of this
    process that save their own data files (see :func:`save_coverage`)."""
    namespace = early_config.known_args_namespace
    hidden = {"numprocesses": None, "dist": "no"}
    saved = {name: getattr(namespace, name) for name in hidden if hasattr(namespace, name)}
    for name in saved:
        setattr(namespace, name, hidden[name])
    try:
        return (yield)
    finally:
        for name, value in saved.items():
            setattr(namespace, name, value)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """xdist's options, with xdist's meaning, when xdist is not loaded (else xdist's are read)."""
    restore_env()  # the first hook pytest calls on registering us
    if xdist_registered(pluginmanager):
        return
    group = parser.getgroup("zeus-workers", "zeus: tests on warm workers forked after collection")
    group._addoption(
        "-n", "--numprocesses", dest="numprocesses", metavar="numprocesses", action="store",
        type=parse_numprocesses,
        help="Run the tests on this many workers forked after collection (zeus); 'auto': the "
             "usable CPUs, 'logical': all logical CPUs, 0: serially.")
    group.addoption("--maxprocesses", dest="maxprocesses", metavar="maxprocesses",
                    action="store", type=int, help="At most this many workers with -n auto.")
    group.addoption("--max-worker-restart", dest="maxworkerrestart", action="store",
                    default=None, help="How many crashed workers are replaced (default 4 per "
                                       "worker).")
    group.addoption("--dist", metavar="distmode", dest="dist", default="no", action="store",
                    choices=list(MODES),
                    help="load (default with -n), worksteal (= load), loadfile, loadscope, "
                         "loadgroup, no.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``-n`` and friends asked for in this run."""

    workers: int
    mode: Mode
    max_restarts: int


SETTINGS = pytest.StashKey[Settings]()


def refuse(what: str, why: str) -> pytest.UsageError:
    return pytest.UsageError(f"zeus pytest: {what} {why}")


def auto_workers(config: pytest.Config, kind: str) -> int:
    """``-n auto``/``-n logical``, as xdist counts them: what a plugin's (or conftest's)
    ``pytest_xdist_auto_num_workers`` says, else ``PYTEST_XDIST_AUTO_NUM_WORKERS``, else the
    usable CPUs (``os.sched_getaffinity``) for ``auto`` and the logical CPUs for ``logical``.
    xdist's own implementation of the hook is left out: with psutil installed it counts
    physical cores, not the CPUs this process may use."""
    caller = getattr(config.hook, "pytest_xdist_auto_num_workers", None)
    if caller is not None:
        xdist = [plugin for plugin in config.pluginmanager.get_plugins()
                 if getattr(plugin, "__name__", None) == "xdist.plugin"]
        told = config.pluginmanager.subset_hook_caller(
            "pytest_xdist_auto_num_workers", remove_plugins=xdist)(config=config)
        if told is not None:
            return int(told)
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if forced:
        try:
            return int(forced)
        except ValueError:
            warnings.warn(f"PYTEST_XDIST_AUTO_NUM_WORKERS is not a number: {forced!r}. "
                          "Ignoring it.", stacklevel=2)
    if kind == "logical":
        return os.cpu_count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_settings(config: pytest.Config) -> Settings:
    """The run's settings from the options; raises ``UsageError`` for what is not supported."""
    option = config.option
    for dest, flag in (("tx", "--tx"), ("rsyncdir", "--rsyncdir"),
                       ("looponfail", "-f/--looponfail"), ("distload", "-d")):
        if getattr(option, dest, None):
            raise refuse(flag, "is not supported (zeus runs workers forked on this machine); "
                               "run plain pytest for it")
    mode = MODES.get(getattr(option, "dist", "no") or "no", "no")
    if mode is None:
        raise refuse("--dist each", "is not supported (zeus runs each test once); run plain "
                                    "pytest for it")
    asked = getattr(option, "numprocesses", None)
    debugging = bool(getattr(option, "usepdb", False) or getattr(option, "trace", False))
    if asked in ("auto", "logical"):
        # As xdist documents: -n auto/logical is 0 with --pdb (an ini's "-n auto" must not stop
        # debugging a single test).
        count = 0 if debugging else auto_workers(config, str(asked))
    else:
        count = int(asked or 0)
    limit = getattr(option, "maxprocesses", None)
    if limit:
        count = min(count, limit)
    if count < 0:
        raise refuse(f"-n {count}", "is not a number of workers; give 0 or more")
    if count and debugging and not option.collectonly:
        flag = "--pdb" if getattr(option, "usepdb", False) else "--trace"
        raise refuse(f"{flag} cannot be used with -n {count}",
                     "(the workers share one terminal and none can run a debugger); use -n 0")
    restarts = getattr(option, "maxworkerrestart", None)
    if mode == "no":
        count = 0
    return Settings(workers=count, mode="load" if mode == "no" else mode,  # type: ignore[arg-type]
                    max_restarts=4 * count if restarts is None else int(restarts))


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[None]:
    """Read ``-n`` and friends, then switch xdist's own distribution off (a wrapper runs before
    xdist's tryfirst implementation, which would otherwise start its session)."""
    option = config.option
    if getattr(option, "numprocesses", None) not in (None, 0) and getattr(option, "dist",
                                                                          "no") == "no":
        option.dist = "load"
    config.stash[SETTINGS] = read_settings(config)
    option.numprocesses = None
    option.dist = "no"
    option.tx = []
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """While the plugins configure, ``--dist`` reads as in xdist's controller when the run has
    workers (until :func:`pytest_sessionstart`): a plugin that cannot measure on workers turns
    itself off as under xdist, with its own warning (pytest-benchmark: else the workers would
    time the benchmarks two at a time and its table, JSON and comparisons would silently be
    empty). xdist's own session is not started: it also needs ``--tx``, empty here."""
    if not xdist_registered(config.pluginmanager):
        config.addinivalue_line("markers", "xdist_group: run these tests on one worker "
                                           "(--dist loadgroup)")
    settings = config.stash.get(SETTINGS, None)
    if settings is not None and settings.workers > 0:
        config.option.dist = settings.mode


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """``--dist`` is "no" again (see :func:`pytest_configure`): xdist must not distribute."""
    session.config.option.dist = "no"


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """Run the items on the workers; None (pytest's own loop runs) when serial, collecting only,
    or when collection failed (pytest's loop then stops with the right error)."""
    config = session.config
    settings = config.stash.get(SETTINGS, None)
    if (settings is None or settings.workers <= 0 or config.option.collectonly
            or not session.items
            or (session.testsfailed and not config.option.continue_on_collection_errors)):
        return None
    if not all(isinstance(getattr(getattr(config.hook, name), "_hookimpls", None), list)
               for name in REPORT_HOOKS):
        warnings.warn(pytest.PytestWarning("zeus pytest: this pluggy keeps hook implementations "
                                           "elsewhere; running the tests serially"),
                      stacklevel=1)
        return None
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        factory.getbasetemp()  # the run's, made (and cleaned) here; workers use popen-gwN in it
    progress_without_files(config)
    try:
        Controller(session, settings).run()
    finally:
        in_collection_order(config, session.items)
    if session.shouldfail:
        raise session.Failed(session.shouldfail)
    if session.shouldstop:
        raise session.Interrupted(session.shouldstop)
    return True


def progress_without_files(config: pytest.Config) -> None:
    """As xdist does: workers finish items of several files at once, so a progress line per
    file would break up at every switch; the dots and percentages stay. The blank line that
    the first file's name would have started with stays too (the header ends as serially)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not hasattr(reporter, "showfspath"):
        return
    if reporter.showfspath and getattr(reporter, "verbosity", 0) == 0:
        reporter.write_line("")
    reporter.showfspath = False


class WorkerInterruption:
    """Registered when the run ends with a worker's ^C: pytest's closing ``KeyboardInterrupt``
    line then names where that worker was interrupted (the test's line, as serially), not
    where the controller was waiting for the workers."""

    def __init__(self, reporter: Any, where: bytes) -> None:
        self.reporter = reporter
        self.where = where

    @pytest.hookimpl(trylast=True)  # after the terminal reporter's own memo
    def pytest_keyboard_interrupt(self) -> None:
        with contextlib.suppress(Exception):
            self.reporter._keyboardinterrupt_memo = pickle.loads(self.where)


def in_collection_order(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sort the terminal reporter's reports by item, as a serial run has them: the failures,
    errors and short summary then come in the serial order, whichever worker finished first."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", None)
    if not isinstance(stats, dict):
        return
    # What no item names (warnings and errors of collection) came first: it stays first.
    order = {item.nodeid: index for index, item in enumerate(items)}
    for reports in stats.values():
        if isinstance(reports, list):
            reports.sort(key=lambda report: order.get(str(getattr(report, "nodeid", "")), -1))


# -- scheduling -----------------------------------------------------------------------------------
def group_key(item: pytest.Item, mode: Mode, index: int) -> object:
    """The group ``item`` belongs to: every item alone (load), its file (loadfile), its class or
    else file (loadscope), its ``xdist_group`` mark or else alone (loadgroup)."""
    nodeid = item.nodeid
    if mode == "loadfile":
        return nodeid.split("::", 1)[0]
    if mode == "loadscope":
        return nodeid.rsplit("::", 1)[0] if "[" not in nodeid else \
            nodeid.split("[", 1)[0].rsplit("::", 1)[0]
    if mode == "loadgroup":
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            return ("group", mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    return index


class Queue:
    """The items not handed out yet, as groups in order of their first item. A worker takes
    the next item of the group it holds, else the first group left (so its indices go up)."""

    def __init__(self, items: list[pytest.Item], mode: Mode) -> None:
        groups: dict[object, deque[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(group_key(item, mode, index), deque()).append(index)
        self.groups: deque[deque[int]] = deque(groups.values())
        self.current: dict[str, deque[int]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.groups)) + sum(map(len, self.current.values()))

    def take(self, worker: str) -> int | None:
        """The next index for ``worker``, or None when nothing is left for it."""
        group = self.current.get(worker)
        if not group:
            if not self.groups:
                self.current.pop(worker, None)
                return None
            group = self.current[worker] = self.groups.popleft()
        return group.popleft()

    def new_group_for(self, worker: str) -> bool:
        """Whether ``worker``'s next :meth:`take` starts a group (its own has no test left)."""
        return not self.current.get(worker)

    def give_back(self, worker: str, indices: list[int]) -> None:
        """``worker`` is gone: ``indices`` (handed out, not started) and the rest of its group
        go first to whoever asks next."""
        rest = self.current.pop(worker, deque())
        rest.extendleft(reversed(indices))
        if rest:
            self.groups.appendleft(rest)


# -- wire -----------------------------------------------------------------------------------------
# Worker -> controller:
#   ("start", index, events, stop, want)  the events of the item it just ran; it starts ``index``
#       now (None: none yet); ``stop``: why a hook stopped the session in the worker, or None;
#       ``want``: it asks for one more index (the reply comes while it runs ``index``: a worker
#       always knows the item after the one it runs, without waiting for the controller).
#   ("ran", events, stop)  it ran the item it started (its events), and will start the next
#       one it was handed once it has the answer to its last ``want``: the controller holds
#       that answer back while tests are scarce (see Controller.scarce) until this message.
#   ("bye", events, workeroutput)  done (or stopped); the events of its last item, and what its
#       conftests' pytest_sessionfinish put in ``config.workeroutput`` (xdist's recipe).
#   ("interrupted", events, where)  ^C reached it (``where``: :func:`interruption`); it tears its
#       fixtures down and exits.
#   ("exit", events, (reason, status))  a test called pytest.exit().
# Controller -> worker, one per ``want``:  ("next", index) | ("end", None) | ("stop", None)
Event = tuple[str, Any]


def send(sock: socket.socket, message: object) -> None:
    _only_the_worker()
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if _worker_pid is None:
        sock.sendall(HEADER.pack(len(data)) + data)
        return
    # In a worker, ^C waits until the frame is whole: half a frame reads as a broken worker.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        sock.sendall(HEADER.pack(len(data)) + data)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def receive(sock: socket.socket) -> Any:
    """The next message (blocking); EOFError when the other side closed."""
    _only_the_worker()
    size = HEADER.unpack(_exactly(sock, HEADER.size))[0]
    return pickle.loads(_exactly(sock, size))


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _only_the_worker() -> None:
    """In a process a test forked from a worker, that reached the end of its test (it did not
    ``os._exit``): end it here. Serially such a child runs the rest of the session itself;
    here it would take the worker's next tests and answers, and the worker would wait forever."""
    if _worker_pid is None or os.getpid() == _worker_pid:
        return
    print("zeus: a process forked by a test went on past the end of its test; under -n it "
          "ends there (status 1)", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(1)


def picklable(events: list[Event]) -> list[Event]:
    """``events`` with each report attribute that does not pickle (a plugin's lock, an item
    that a hook put on a report) replaced by its repr: the report still reaches the
    controller."""
    kept: list[Event] = []
    for kind, payload in events:
        if kind == "report":
            data = {key: value if pickling_error(value) is None else repr(value)
                    for key, value in payload[0].items()}
            payload = (data, *payload[1:])
        kept.append((kind, payload))
    return kept


def pickling_error(value: object) -> Exception | None:
    """Why ``value`` does not pickle (what crosses a worker's socket must), or None."""
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return exc
    return None


class ProtocolError(Exception):
    """A worker sent something that is not a message (it was cut off mid-send)."""


def frames(buffer: bytearray) -> Iterator[Any]:
    """The whole messages at the start of ``buffer`` (consumed from it); ProtocolError for
    bytes that do not unpickle."""
    while len(buffer) >= HEADER.size:
        size = HEADER.unpack_from(buffer)[0]
        if len(buffer) < HEADER.size + size:
            return
        data = bytes(buffer[HEADER.size:HEADER.size + size])
        del buffer[:HEADER.size + size]
        try:
            message = pickle.loads(data)
        except Exception as exc:
            raise ProtocolError(repr(exc)) from exc
        yield message


# -- worker ---------------------------------------------------------------------------------------
class Forwarder:
    """In a worker, the only implementation of the reporting hooks: buffers the events of the
    running item (reports serialized by pytest's own hook) for the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.events: list[Event] = []
        self.armed = False  # registering replays past warnings: the controller has those

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.events.append(("logstart", (nodeid, location)))

    def pytest_runtest_logfinish(self, nodeid: str,
                                 location: tuple[str, int | None, str]) -> None:
        self.events.append(("logfinish", (nodeid, location)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.events.append(("report", (data, _flattened_longrepr(report),
                                       failed_subtests(self.config, report))))

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage, when: str,
                                nodeid: str, location: tuple[str, int, str] | None) -> None:
        if not self.armed:
            return
        category = warning_message.category
        self.events.append(("warning", {
            "message": str(warning_message.message),
            "category": (category.__module__, category.__qualname__),
            "filename": warning_message.filename, "lineno": warning_message.lineno,
            "line": warning_message.line, "when": when, "nodeid": nodeid,
            "location": location}))


def _flattened_longrepr(report: pytest.TestReport) -> bytes | None:
    """The report's failure representation, pickled, when pytest's serialization would flatten
    it to its text: a representation that draws itself but is no exception chain (a missing
    fixture's, a plugin's own). As text, the short summary would add its first line to the
    report's line (``ERROR test - file ...``) and the failure would lose its colours; a serial
    run has neither. None for the others, and for one that does not pickle (then the text)."""
    longrepr = report.longrepr
    if not hasattr(longrepr, "toterminal") or (hasattr(longrepr, "reprtraceback")
                                               and hasattr(longrepr, "reprcrash")):
        return None
    try:
        return pickle.dumps(longrepr, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def _subtests_stash(config: pytest.Config) -> Any | None:
    """pytest's count of failed subtests by test (``subtests`` fixture, pytest >= 9), or None."""
    module = sys.modules.get("_pytest.subtests")
    key = getattr(module, "failed_subtests_key", None)
    return config.stash.get(key, None) if key is not None else None


def failed_subtests(config: pytest.Config, report: pytest.TestReport) -> int:
    """How many subtests of ``report``'s test failed in this worker: pytest fails a test that
    passed but holds failed subtests when its report is *shown* (``pytest_report_teststatus``,
    in the controller), from a count its subtests kept in the worker's own config."""
    counts = _subtests_stash(config)
    if counts is None or report.when != "call":
        return 0
    return int(counts.get(subtests_key(report), 0))


def subtests_key(report: pytest.TestReport) -> Any:
    """How pytest's subtests count a test: its NodeId since pytest 9.2, its node id before."""
    return getattr(report, "id", None) or report.nodeid


def keep_only(config: pytest.Config, *plugins: object) -> None:
    """Cut each reporting hook down to the implementations of ``plugins``, in place: the callers
    that pytest made for conftest folders (subset callers) read this same list."""
    for name in REPORT_HOOKS:
        impls = getattr(config.hook, name)._hookimpls
        impls[:] = [impl for impl in impls if any(impl.plugin is plugin for plugin in plugins)]


def fresh_capture(config: pytest.Config) -> None:
    """Give this worker capture files of its own: the ones forked from the controller share
    their file offset with every other worker, whose captured output would mix with ours."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None or getattr(capman, "_global_capturing", None) is None:
        return
    try:
        # Not stop_global_capturing(): its pop_outerr_to_orig() would read the shared file.
        capman._global_capturing.stop_capturing()
        capman._global_capturing = None
        capman.start_global_capturing()
        capman.suspend_global_capture()  # as between two items in the controller
    except Exception as exc:
        print(f"zeus: worker could not reset output capture: {exc!r}", file=sys.stderr)


def worker_main(session: pytest.Session, sock: socket.socket,
                workerinput: dict[str, Any]) -> None:
    """The worker's life: ask, run what was handed out, send its events; never returns.
    ``workerinput`` is its :attr:`WorkerNode.workerinput` (its ``workerid`` names it)."""
    from zeuspy.shim import hygiene, process

    global _worker_pid
    _worker_pid = os.getpid()
    code = 0
    name = str(workerinput["workerid"])
    try:
        process.set_title(f"zeus pytest worker {name}")
        config = session.config
        os.environ["PYTEST_XDIST_WORKER"] = name
        os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(workerinput["workercount"])
        # What xdist's workers carry (worker_id, testrun_uid, pytest-django's per-worker database,
        # what a conftest's pytest_configure_node added), and where a conftest's
        # pytest_sessionfinish leaves what it sends to the controller's pytest_testnodedown.
        config.workerinput = workerinput  # type: ignore[attr-defined]
        config.workeroutput = {}  # type: ignore[attr-defined]
        hygiene.drop_inherited_exit_handlers()  # the command's: they act on its objects
        fresh_capture(config)
        coverage_back_to_pytest_cov(config, name)
        rerun_counts_in_controller(config, name)
        own_basetemp(config, name)
        forgotten_children()
        forwarder = Forwarder(config)
        config.pluginmanager.register(forwarder, f"zeus-worker-{name}")
        # The session's own count stays: a fixture reads request.session.testsfailed.
        keep_only(config, forwarder, session)
        forwarder.armed = True
        run_items(session, sock, forwarder)
    except (EOFError, ConnectionError):
        code = 1  # the controller is gone (its death signal may not have come yet): nothing to say
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        if os.getpid() != _worker_pid:  # a test's forked child: nothing here is its own
            os._exit(1)
        with contextlib.suppress(BaseException):
            save_coverage(session.config, name)
        with contextlib.suppress(BaseException):
            end_daemonic_children()
        # The exit handlers its tests registered run here, as at an xdist worker's exit (the
        # command's own were dropped at the fork: they run in the command). Not the wait for
        # non-daemon threads: the run is over, and one a test left would hold the whole run
        # up to FINISH_TIMEOUT.
        with contextlib.suppress(BaseException):
            from zeuspy.shim.command import exit_as_python

            exit_as_python(wait_for_threads=False)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def own_basetemp(config: pytest.Config, name: str) -> None:
    """``popen-NAME`` in the run's basetemp becomes this worker's, as under xdist: tmp_path
    folders of two workers never collide, and ``getbasetemp().parent`` is the run's own folder
    (xdist's recipe for a session fixture run once across workers keys a lock file there)."""
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if base is None:
        return
    own = base / f"popen-{name}"
    own.mkdir(mode=0o700, exist_ok=True)
    factory._basetemp = own  # type: ignore[union-attr]


def forgotten_children() -> None:
    """Forget the controller's multiprocessing children (not this worker's to end)."""
    module = sys.modules.get("multiprocessing.process")
    children = getattr(module, "_children", None)
    if isinstance(children, set):
        children.clear()


def end_daemonic_children() -> None:
    """What python's exit does with the multiprocessing children a test left (``os._exit``
    skips it): terminate the daemonic ones. Else they would outlive the run, and hold its
    worker's socket open."""
    if "multiprocessing" not in sys.modules:
        return
    import multiprocessing

    for child in multiprocessing.active_children():
        if child.daemon:
            child.terminate()
            child.join(CHILD_TIMEOUT)


def coverage_of_run(config: pytest.Config) -> Any | None:
    """The ``coverage.Coverage`` pytest-cov measures this run with, or None."""
    plugin = config.pluginmanager.get_plugin("_cov")
    return getattr(getattr(plugin, "cov_controller", None), "cov", None)


def save_coverage(config: pytest.Config, name: str) -> None:
    """Write what pytest-cov measured in this worker to a data file of its own, as coverage
    would at exit (``os._exit`` skips that). Coverage sees the fork and names the file after
    this process (pytest-cov's data files have a suffix); pytest-cov's combine in the controller,
    at the end of the run, reads it with the controller's own. A worker killed mid-run loses its
    data (as under xdist)."""
    cov = coverage_of_run(config)
    if cov is None:
        return
    try:
        cov.stop()
        cov.save()
    except Exception as exc:
        print(f"zeus: worker {name} could not save its coverage data: {exc!r}", file=sys.stderr)


def coverage_back_to_pytest_cov(config: pytest.Config, name: str) -> None:
    """Undo, in this worker, what coverage's ``patch = fork`` did at the fork: it stopped
    pytest-cov's ``Coverage`` and started one of its own (or none: seen with Python 3.10 and
    coverage 7.16), which pytest-cov does not know
    (its ``--cov-context=test`` switches would fail: "coverage is not started") and which would
    save only at exit. pytest-cov's measures the worker again, and :func:`save_coverage` saves
    it, as without the patch."""
    cov = coverage_of_run(config)
    if cov is None:
        return
    current = getattr(type(cov), "current", None)
    started = current() if callable(current) else None
    if started is cov or (started is None and getattr(cov, "_started", True)):
        return  # measuring, or not ours to start
    try:
        if started is not None:
            started._auto_save = False  # nor at its exit handler, now run in workers
            started.stop()
        cov.start()
    except Exception as exc:
        print(f"zeus: worker {name} could not resume pytest-cov's coverage: {exc!r}",
              file=sys.stderr)


def rerunfailures_class(db: object, name: str) -> Any | None:
    """The class ``name`` of the module of pytest-rerunfailures' ``db``, or None."""
    return getattr(sys.modules.get(type(db).__module__), name, None)


def share_rerun_counts(config: pytest.Config) -> None:
    """In the controller, before the fork: pytest-rerunfailures without xdist counts runs and
    failures in a plain in-process store, of which each worker would hold a copy (so
    ``--max-suite-reruns`` would cap each worker's reruns, not the run's). It gets the store
    it uses with xdist: a server thread in the controller (see
    :func:`rerun_counts_in_controller`)."""
    db: Any = getattr(config, "failures_db", None)
    server = rerunfailures_class(db, "ServerStatusDB")
    if type(db).__name__ != "StatusDB" or server is None:
        return
    try:
        config.failures_db = server()  # type: ignore[attr-defined]
    except Exception as exc:
        print(f"zeus: pytest-rerunfailures' counts stay per worker: {exc!r}", file=sys.stderr)


def rerun_counts_in_controller(config: pytest.Config, name: str) -> None:
    """pytest-rerunfailures keeps its counts of runs and failures in the controller (with xdist
    installed, or after :func:`share_rerun_counts`), where a thread of its serves them to
    xdist's workers over a socket. A worker forked here holds a copy of that server without
    its thread, so it would count alone: it asks the controller's, with pytest-rerunfailures'
    own client, as xdist's workers do."""
    db: Any = getattr(config, "failures_db", None)
    client = rerunfailures_class(db, "ClientStatusDB")
    if type(db).__name__ != "ServerStatusDB" or client is None:
        return
    try:
        config.failures_db = client(db.sock_port, db.token)  # type: ignore[attr-defined]
    except Exception as exc:
        print(f"zeus: worker {name} could not reach pytest-rerunfailures' counts: {exc!r}",
              file=sys.stderr)


def run_items(session: pytest.Session, sock: socket.socket, forwarder: Forwarder) -> None:
    hook = session.config.hook
    items = session.items

    def stopped() -> str | None:
        """Why a hook stopped the worker's session (``-x``, ``--sw``, ...), or None."""
        stop = session.shouldfail or session.shouldstop
        return str(stop) if stop else None

    def start(index: int | None, want: bool) -> None:
        tell(("start", index), forwarder.take(), stopped(), want)

    def ran() -> None:
        tell(("ran",), forwarder.take(), stopped())

    def tell(head: tuple[Any, ...], events: list[Event], *tail: Any) -> None:
        """Send ``(*head, events, *tail)``; report values that do not pickle go as their repr."""
        try:
            send(sock, (*head, events, *tail))
        except Exception:
            send(sock, (*head, picklable(events), *tail))

    def answer() -> tuple[str, int | None]:
        reply: tuple[str, int | None] = receive(sock)
        return reply

    try:
        start(None, True)
        verb, current = answer()
        following: int | None = None
        if verb == "next":
            start(None, True)
            verb, following = answer()
        # ``verb`` and ``following``: the answer about the item after ``current``.
        while verb != "stop" and current is not None:
            more = verb == "next"
            start(current, more)
            hook.pytest_runtest_protocol(item=items[current], nextitem=(
                items[following] if more and following is not None else None))
            if not more:
                break
            ran()
            current = following
            verb, following = answer()
        if verb == "stop":
            session._setupstate.teardown_exact(None)
        finish_conftests(session)
        tell(("bye",), forwarder.take(), sendable(getattr(session.config, "workeroutput", {})))
    except pytest.exit.Exception as exc:
        events = forwarder.take()
        with contextlib.suppress(Exception):
            session._setupstate.teardown_exact(None)
        send(sock, ("exit", events, (exc.msg, exc.returncode)))
    except KeyboardInterrupt:
        forwarder.take()  # the interrupted item's partial events: it did not run to the end
        # Said before the teardown, which may take long: the controller then leaves this worker
        # to finish it (as pytest does serially) instead of interrupting it again.
        with contextlib.suppress(OSError):
            send(sock, ("interrupted", [], interruption()))
        with contextlib.suppress(BaseException):  # a second ^C cuts it short, as serially
            session._setupstate.teardown_exact(None)


def finish_conftests(session: pytest.Session) -> None:
    """The ``pytest_sessionfinish`` and ``pytest_unconfigure`` hooks of the conftest files, as
    an xdist worker runs them at its end (a conftest that opened a file in
    ``pytest_configure``, written by the worker's tests, closes it there). Only conftests': the
    plugins' would report (terminal, junitxml), which the controller alone does. What they
    print is dropped, as an xdist worker's output is: the controller prints its own."""
    config = session.config
    status = pytest.ExitCode.TESTS_FAILED if session.testsfailed else pytest.ExitCode.OK
    for name, kwargs in (("pytest_sessionfinish", {"session": session, "exitstatus": status}),
                         ("pytest_unconfigure", {"config": config})):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                conftest_hook(config, name)(**kwargs)
        except pytest.exit.Exception:
            raise
        except Exception:
            import traceback

            traceback.print_exc()


def conftest_hook(config: pytest.Config, name: str) -> Any:
    """The hook ``name`` of the conftest files only (not of plugins): what an xdist worker or
    controller runs of a conftest that plugins configured for one process must not run here."""
    manager = config.pluginmanager
    others = [plugin for plugin in manager.get_plugins()
              if os.path.basename(str(getattr(plugin, "__file__", ""))) != "conftest.py"]
    return manager.subset_hook_caller(name, remove_plugins=others)


def sendable(output: dict[str, Any]) -> dict[str, Any]:
    """``output`` (a worker's ``workeroutput``) without the values that do not pickle, each
    named on stderr: xdist's wire carries plain data only, so a conftest sends no other."""
    kept = {}
    for key, value in output.items():
        error = pickling_error(value)
        if error is not None:
            print(f"zeus: workeroutput[{key!r}] is not sent to the controller: {error!r}",
                  file=sys.stderr)
            continue
        kept[key] = value
    return kept


def interruption() -> bytes | None:
    """The KeyboardInterrupt being handled, as pytest shows it at the end of the run (where it
    landed: the test's line, not the controller's), pickled; None if it does not pickle."""
    from _pytest._code import ExceptionInfo

    try:
        return pickle.dumps(ExceptionInfo.from_current().getrepr(funcargs=True),
                            protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


# -- controller -----------------------------------------------------------------------------------
class WorkerNode:
    """A worker as xdist's controller hooks see it (its ``WorkerController``), for the
    conftests' ``pytest_configure_node(node)`` (before the fork: what it adds to
    :attr:`workerinput` the worker reads as ``config.workerinput``) and
    ``pytest_testnodedown(node, error)`` (after the worker's end: :attr:`workeroutput`, set
    then, holds what its conftests' ``pytest_sessionfinish`` put in ``config.workeroutput``)."""

    workeroutput: dict[str, Any]

    def __init__(self, config: pytest.Config, workerinput: dict[str, Any]) -> None:
        self.config = config
        self.workerinput = workerinput
        self.gateway = types.SimpleNamespace(id=workerinput["workerid"])

    def __repr__(self) -> str:
        return f"<WorkerNode {self.gateway.id}>"


@dataclasses.dataclass(eq=False)
class Worker:
    """The controller's handle on one worker process."""

    name: str
    pid: int
    sock: socket.socket
    node: WorkerNode
    buffer: bytearray = dataclasses.field(default_factory=bytearray)
    #: Past its deadline to exit, and said so.
    overdue: bool = False
    #: The index it said it started, and those handed out that it has not started.
    running: int | None = None
    assigned: list[int] = dataclasses.field(default_factory=list)
    #: Said goodbye (done, stopped or interrupted): its exit is not a crash.
    finished: bool = False
    #: Its request for a test is answered when it has run the one it is running (scarce).
    waiting: bool = False
    #: Let go (:meth:`Controller.let_go`): SIGKILL if it has not exited by then.
    deadline: float | None = None


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"died of signal {number} ({signal.Signals(number).name})"
        except ValueError:
            return f"died of signal {number}"
    return f"exited {os.waitstatus_to_exitcode(status)}"


class Controller:
    """Forks the workers, answers them from the queue, replays their events, replaces the ones
    that crash, and reaps every one of them before :meth:`run` returns or raises."""

    def __init__(self, session: pytest.Session, settings: Settings) -> None:
        self.session = session
        self.config = session.config
        self.items = session.items
        self.index_of = {item.nodeid: index for index, item in enumerate(self.items)}
        #: The items that ran to their end, and those with a failed report (in any phase).
        self.ran: set[int] = set()
        self.failed: set[int] = set()
        self.mode = settings.mode
        self.queue = Queue(self.items, settings.mode)
        self.count = min(settings.workers, len(self.queue.groups))
        self.max_restarts = self.restarts_left = settings.max_restarts
        self.exit: tuple[str, int | None] | None = None
        self.selector = selectors.DefaultSelector()
        self.workers: dict[int, Worker] = {}  # by pid
        self.started = 0
        self.run_uid = uuid.uuid4().hex
        self.stopping = False
        self.interrupted = False
        #: The first interrupted worker's KeyboardInterrupt, as :func:`interruption` sends it.
        self.interruption: bytes | None = None
        self.hurry = False
        self.exit_poll = EXIT_POLL

    # -- life --
    def run(self) -> None:
        if os.environ.get(GC_FREEZE_ENV, "1") != "0":
            # As the phases do before they fork: the collected tests (and all before them) leave
            # the collector's reach, so that the workers' collections neither walk them nor copy
            # the pages they sit on. They live until the run ends anyway.
            gc.freeze()
        cov = coverage_of_run(self.config)
        if cov is not None:
            # The controller may run no test, and find no data of its own to save: not worth
            # coverage's "No data was collected" (pytest-cov says the same of xdist's controller).
            cov._warn_no_data = False
        share_rerun_counts(self.config)
        try:
            for _ in range(self.count):
                self.fork()
            while self.workers and not self.interrupted:
                self.step(TICK)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            if self.workers:
                self.shut_down()
            self.selector.close()
        if not self.interrupted:
            self.stepwise_in_collection_order()
        if self.interrupted:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if self.interruption is not None and hasattr(reporter, "_keyboardinterrupt_memo"):
                self.config.pluginmanager.register(WorkerInterruption(reporter,
                                                                      self.interruption))
            raise KeyboardInterrupt
        if self.exit is not None:
            raise pytest.exit.Exception(*self.exit)
        if len(self.queue) and not self.stopping:
            left = len(self.queue)
            raise self.session.Interrupted(
                f"zeus: workers kept crashing (--max-worker-restart {self.max_restarts}); "
                f"{left} test{'s' if left != 1 else ''} not run")

    def stepwise_in_collection_order(self) -> None:
        """``--sw``: where the next run starts is where a serial run would have stopped: the
        first item, in collection order, that failed (the first failure passed over under
        ``--sw-skip``) or did not run. pytest's stepwise plugin saw the reports in the order
        the workers finished, and would name the last failure replayed, which may come after
        a test that still fails or never ran."""
        plugin = self.config.pluginmanager.get_plugin("stepwiseplugin")
        if plugin is None:
            return
        skip = bool(self.config.getoption("stepwise_skip", False))
        restart: pytest.Item | None = None
        for index, item in enumerate(self.items):
            if index in self.ran and index not in self.failed:
                continue
            if index in self.failed and skip:
                skip = False
                continue
            restart = item
            break
        cached = getattr(plugin, "cached_info", None)
        if cached is not None and hasattr(cached, "last_failed"):
            # A NodeId since pytest 9.2 (Item.id), the node id's text before.
            cached.last_failed = (getattr(restart, "id", restart.nodeid)
                                  if restart is not None else None)
        elif hasattr(plugin, "lastfailed"):  # pytest < 9
            plugin.lastfailed = restart.nodeid if restart is not None else None

    def fork(self) -> None:
        name = f"gw{self.started}"
        self.started += 1
        node = self.configure_node(name)
        ours, theirs = socket.socketpair()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # else the child flushes what the controller had buffered, again
        controller = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                from zeuspy.shim import process

                process.die_with_parent(controller)
                ours.close()
                self.selector.close()
                for worker in self.workers.values():
                    worker.sock.close()
            finally:
                worker_main(self.session, theirs, node.workerinput)
        theirs.close()
        worker = Worker(name, pid, ours, node)
        self.workers[pid] = worker
        self.selector.register(ours, selectors.EVENT_READ, worker)

    def configure_node(self, name: str) -> WorkerNode:
        """The node of the worker ``name`` about to be forked, with what xdist's workers carry
        in ``workerinput`` and what the conftests' ``pytest_configure_node`` add."""
        node = WorkerNode(self.config, {"workerid": name, "workercount": self.count,
                                        "testrunuid": self.run_uid, "mainargv": list(sys.argv)})
        if hasattr(self.config.hook, "pytest_configure_node"):
            conftest_hook(self.config, "pytest_configure_node")(node=node)
        return node

    def node_down(self, worker: Worker, output: dict[str, Any]) -> None:
        """``worker`` ended its session: the conftests' ``pytest_testnodedown`` get its output,
        as xdist's controller calls them when a worker finished."""
        worker.node.workeroutput = output
        if hasattr(self.config.hook, "pytest_testnodedown"):
            conftest_hook(self.config, "pytest_testnodedown")(node=worker.node, error=None)

    def step(self, timeout: float) -> None:
        self.reap_finished()
        if not self.selector.get_map():  # only workers let go: wait for their exits
            time.sleep(min(timeout, self.exit_poll))
            self.exit_poll = min(self.exit_poll * 2, TICK)  # they exit at once, or take long
            return
        for key, _ in self.selector.select(timeout):
            worker: Worker = key.data
            try:
                data = worker.sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                self.gone(worker)
                continue
            worker.buffer += data
            try:
                for message in frames(worker.buffer):
                    self.handle(worker, message)
            except ProtocolError as exc:
                print(f"zeus: worker {worker.name} sent a broken message ({exc})",
                      file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                self.gone(worker)

    def handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        verb = message[0]
        if verb == "start":
            _, index, events, stop, want = message
            self.replay(events)
            self.stop_as(stop)
            worker.running = index
            if index is not None and index in worker.assigned:
                worker.assigned.remove(index)
            if want and self.scarce(worker):
                worker.waiting = True
            elif want:
                self.answer(worker)
        elif verb == "ran":
            _, events, stop = message
            self.replay(events)
            self.stop_as(stop)
            worker.running = None
            if worker.waiting:
                worker.waiting = False
                self.answer(worker)
        else:  # bye, interrupted, exit
            worker.finished = True
            worker.running = None
            worker.assigned.clear()
            self.replay(message[1])
            if verb != "interrupted":
                self.let_go(worker)
            if verb == "bye":
                self.node_down(worker, message[2])
            if verb == "interrupted":
                self.interrupted = self.stopping = True  # one ^C ends the run, as serially
                self.interruption = self.interruption or message[2]
            elif verb == "exit" and self.exit is None:
                self.exit = message[2]  # pytest.exit() in a test: the run ends with it
                self.stopping = True

    def stop_as(self, stop: str | None) -> None:
        """A hook stopped the session in a worker (``stop``: why): the run stops here too."""
        if stop and not (self.session.shouldfail or self.session.shouldstop):
            self.session.shouldstop = stop

    def scarce(self, worker: Worker) -> bool:
        """Whether ``worker``'s request for the test after its next one waits until it has run
        the one it is running: near the end of the queue (no more groups left than two per
        worker), a worker that took a test ahead could hold it while another worker idles. A
        request that the worker's own group answers, or that would end or stop it, does not
        wait."""
        if worker.running is None or self.stopping or self.interrupted:
            return False
        if self.session.shouldfail or self.session.shouldstop:
            return False
        running = len(self.silent())
        return running > 1 and self.queue.new_group_for(worker.name) and \
            0 < len(self.queue.groups) <= 2 * running

    def answer(self, worker: Worker) -> None:
        if self.session.shouldfail or self.session.shouldstop:
            self.stopping = True
        reply: tuple[str, int | None] = ("stop", None)
        if not (self.stopping or self.interrupted):
            index = self.queue.take(worker.name)
            reply = ("next", index) if index is not None else ("end", None)
            if index is not None:
                worker.assigned.append(index)
        try:
            send(worker.sock, reply)
        except OSError:
            pass  # it died: its EOF comes next

    def let_go(self, worker: Worker) -> None:
        """``worker`` said its last word: stop listening (a process its tests started may hold
        its socket open long after it exited) and wait for its exit in :meth:`step`."""
        self.hang_up(worker)
        worker.deadline = time.monotonic() + FINISH_TIMEOUT
        self.exit_poll = EXIT_POLL

    def reap_finished(self) -> None:
        """Reap every worker that exited, whether or not its socket closed (a process its
        tests started may hold it open): what it sent last is replayed, and one that did not
        say goodbye is :meth:`gone`. SIGKILL those let go and past their deadline."""
        for worker in list(self.workers.values()):
            if worker.deadline is not None and time.monotonic() >= worker.deadline:
                if not worker.overdue:
                    worker.overdue = True
                    print(f"zeus: worker {worker.name} did not exit {FINISH_TIMEOUT:.0f} s after "
                          "its last test (an atexit handler that blocks?): killed",
                          file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, -1
            if not pid:
                continue
            if worker.deadline is None:  # still listened to: its last frames
                self.drain(worker)
            if worker.pid in self.workers:
                self.gone(worker, status)

    def drain(self, worker: Worker) -> None:
        """Replay the whole messages left in ``worker``'s socket (it exited)."""
        with contextlib.suppress(OSError):
            while data := worker.sock.recv(1 << 20, socket.MSG_DONTWAIT):
                worker.buffer += data
        with contextlib.suppress(ProtocolError):
            for message in frames(worker.buffer):
                self.handle(worker, message)

    def hang_up(self, worker: Worker) -> None:
        """Stop listening to ``worker`` and close its socket."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(worker.sock)
        worker.sock.close()

    def forget(self, worker: Worker) -> None:
        """Stop tracking ``worker`` and close its socket."""
        self.workers.pop(worker.pid, None)
        self.hang_up(worker)

    def gone(self, worker: Worker, status: int | None = None) -> None:
        """``worker``'s socket closed, or it exited (``status``, -1 when it was reaped
        elsewhere): reap it; a crash fails the test it was running, and a replacement takes the
        rest of its work."""
        if status is None:
            status = self.reap(worker)
        else:
            self.forget(worker)
            status = None if status == -1 else status
        if worker.finished:
            return
        how = describe_status(status) if status is not None else "vanished"
        if worker.running is not None and not self.interrupted:  # (^C: cut off, not a crash)
            item = self.items[worker.running]
            self.report_crash(item, f"worker {worker.name} {how} while running {item.nodeid}")
        self.queue.give_back(worker.name, worker.assigned)
        if self.stopping or self.interrupted or not len(self.queue):
            return
        if self.restarts_left > 0:
            self.restarts_left -= 1
            self.fork()
        elif not self.silent():
            print(f"zeus: worker {worker.name} {how}; no restarts left "
                  "(--max-worker-restart)", file=sys.stderr)

    def reap(self, worker: Worker, timeout: float = REAP_TIMEOUT) -> int | None:
        """Close ``worker``'s socket and wait for it (killed after ``timeout``); its status."""
        self.forget(worker)
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                return status
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                try:
                    return os.waitpid(worker.pid, 0)[1]
                except ChildProcessError:
                    return None
            time.sleep(0.01)

    def shut_down(self) -> None:
        """^C (or an error): stop handing out and let the workers stop. They got the terminal's
        SIGINT too; those that have not said so after :data:`INTERRUPT_GRACE` get SIGINT from
        here, and SIGKILL if still silent after :data:`STOP_TIMEOUT`. A worker that said it
        stopped is tearing its fixtures down: as pytest does serially, that may take as long
        as it takes, until a second ^C, after which every worker left gets
        :data:`INTERRUPT_GRACE` to exit before SIGKILL. What arrives meanwhile is replayed;
        every worker is reaped."""
        self.stopping = True
        previous = signal.getsignal(signal.SIGINT)

        def hurry(signum: int, frame: object) -> None:
            self.hurry = True

        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, hurry)
        try:
            self.wait_workers(INTERRUPT_GRACE)
            for worker in self.silent():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.workers and not self.hurry:
                self.wait_workers(TICK)
                if time.monotonic() >= deadline:
                    for worker in self.silent():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGKILL)
                        worker.finished = True
                        self.reap(worker)
            if self.hurry:
                self.hurry = False
                self.wait_workers(INTERRUPT_GRACE)
        finally:
            for worker in list(self.workers.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                worker.finished = True
                self.reap(worker)
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, previous)

    def silent(self) -> list[Worker]:
        """The workers that have not said they stopped."""
        return [worker for worker in self.workers.values() if not worker.finished]

    def wait_workers(self, timeout: float) -> None:
        """Replay what the workers send until all are gone, ^C (:attr:`hurry`) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.workers and not self.hurry and time.monotonic() < deadline:
            try:
                self.step(min(TICK, max(0.0, deadline - time.monotonic())))
            except KeyboardInterrupt:
                self.hurry = True  # ^C before our handler was in place

    # -- replay --
    def item_hook(self, nodeid: str) -> Any:
        """The hooks pytest calls for the item ``nodeid``'s reports (``item.ihook``: plugins,
        and the conftest files of its folders only, not those of other folders)."""
        index = self.index_of.get(nodeid)
        return self.items[index].ihook if index is not None else self.config.hook

    def replay(self, events: list[Event]) -> None:
        """Each event through the controller's hooks, as if the item had run here."""
        hook = self.config.hook
        for kind, payload in events:
            if kind == "logstart":
                self.item_hook(payload[0]).pytest_runtest_logstart(nodeid=payload[0],
                                                                   location=payload[1])
            elif kind == "logfinish":
                self.item_hook(payload[0]).pytest_runtest_logfinish(nodeid=payload[0],
                                                                    location=payload[1])
                if payload[0] in self.index_of:
                    self.ran.add(self.index_of[payload[0]])
            elif kind == "report":
                data, longrepr, subtests_failed = payload
                report = hook.pytest_report_from_serializable(config=self.config, data=data)
                if longrepr is not None:
                    with contextlib.suppress(Exception):  # else the text, as xdist has it
                        report.longrepr = pickle.loads(longrepr)
                self.as_in_worker(report, data, subtests_failed)
                if report.failed and report.nodeid in self.index_of:
                    self.failed.add(self.index_of[report.nodeid])
                self.item_hook(report.nodeid).pytest_runtest_logreport(report=report)
            elif kind == "warning":
                self.replay_warning(payload)

    def as_in_worker(self, report: pytest.TestReport, data: dict[str, Any],
                     subtests_failed: int) -> None:
        """What pytest's subtests keep outside a report's serialized form: the worker's count
        of a test's failed subtests (its report then shows as failed, as serially), and a
        subtest's parameters, which pytest's deserialization would repr a second time
        (``i='1'`` for ``i=1``)."""
        if subtests_failed:
            counts = _subtests_stash(self.config)
            if counts is not None:
                counts[subtests_key(report)] = subtests_failed
        context = getattr(report, "context", None)
        kwargs = data.get("_subtest.context", {}).get("kwargs")
        if context is not None and isinstance(kwargs, dict):
            with contextlib.suppress(Exception):
                object.__setattr__(context, "kwargs", kwargs)

    def replay_warning(self, data: dict[str, Any]) -> None:
        category = warning_category(*data["category"])
        record = warnings.WarningMessage(data["message"], category, data["filename"],
                                         data["lineno"], None, data["line"])
        self.config.hook.pytest_warning_recorded.call_historic(kwargs={
            "warning_message": record, "when": data["when"], "nodeid": data["nodeid"],
            "location": data["location"]})

    def handle_crash(self, index: int, report: pytest.TestReport) -> None:
        """xdist's ``pytest_handlecrashitem``: a plugin may put the crashed test back in the
        queue and turn its report into a rerun (pytest-rerunfailures' ``--reruns``)."""
        hook = getattr(self.config.hook, "pytest_handlecrashitem", None)
        if hook is not None:
            hook(crashitem=report.nodeid, report=report,
                 sched=Rescheduler(self.config, self.queue, self.mode, index))

    def report_crash(self, item: pytest.Item, message: str) -> None:
        from _pytest.reports import TestReport

        report = TestReport(item.nodeid, item.location, dict.fromkeys(item.keywords, 1),
                            "failed", message, "call")
        index = self.index_of[item.nodeid]
        self.handle_crash(index, report)
        if str(report.outcome) != "rerun":  # (a plugin's outcome, beyond pytest's three)
            self.ran.add(index)
            self.failed.add(index)
        hook = item.ihook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


class Rescheduler:
    """What xdist's ``pytest_handlecrashitem(crashitem, report, sched)`` gets as ``sched``:
    the run's ``config``, and :meth:`mark_test_pending`."""

    def __init__(self, config: pytest.Config, queue: Queue, mode: Mode, index: int) -> None:
        self.config = config
        self.queue = queue
        self.mode = mode
        self.index = index

    def mark_test_pending(self, item: str) -> None:
        """Run the crashed test ``item`` again, first. Not with groups (``loadfile``,
        ``loadscope``, ``loadgroup``), as xdist's schedulers of groups cannot either."""
        if self.mode != "load":
            raise NotImplementedError(f"--dist {self.mode} does not run a test again")
        self.queue.groups.appendleft(deque([self.index]))


def warning_category(module: str, qualname: str) -> type[Warning]:
    """The warning class a worker named (the controller imported the same modules), else a
    stand-in of that name."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Warning):
        return found
    stand_in: type[Warning] = type(qualname.rsplit(".", 1)[-1], (UserWarning,),
                                   {"__module__": module})
    return stand_in

