"""Trust (issue 11): a client talks only to its own uid's master, state files are never
followed, and a stopped or wedged master is named instead of hanging its clients.

The attacks need a second uid: a forked child that becomes ``nobody`` (65534) plays the other
local user, listening with a fake master that records what it receives. Those tests run only as
root. Every wait is bounded; every process started here is reaped.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.master import Master
from tests.harness.project import ZEUS, Project
from tests.harness.waits import wait_for
from zeuspy import masterstate, paths, procs
from zeuspy.client import run as client_run
from zeuspy.client import watch

NOBODY = 65534
#: The longest a client may take to name a stopped master: its first look comes after PID_WAIT.
NAMED_WITHIN = client_run.PID_WAIT + 3.0

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="playing another local user needs root (setuid)")


# -- a fake master, run by another uid -------------------------------------------------------------
def _attacker(sock_path: str, folder: str | None, ready_w: int, stop_r: int) -> None:
    """In the forked child: become nobody, create ``folder`` first (when given), listen on
    ``sock_path`` and count what arrives until ``stop_r`` closes; then report as JSON."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    if folder is not None:
        os.mkdir(folder, 0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(16)
    os.write(ready_w, b"R")
    stats = {"connections": 0, "bytes": 0, "fds": 0}
    conns: list[socket.socket] = []

    def read(conn: socket.socket) -> bool:
        try:
            data, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
        except BlockingIOError:
            return True
        except OSError:
            data, ancillary = b"", []
        stats["bytes"] += len(data)
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]
                stats["fds"] += len(fds)
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        return bool(data or ancillary)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([listener, stop_r, *conns], [], [], 0.5)
        if stop_r in ready:
            break
        if listener in ready:
            conn, _ = listener.accept()
            conns.append(conn)
            stats["connections"] += 1
        for conn in [c for c in conns if c in ready]:
            if not read(conn):
                conns.remove(conn)
                conn.close()
    # Whatever is still queued counts too.
    listener.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            conn, _ = listener.accept()
            conns.append(conn)
            stats["connections"] += 1
    for conn in conns:
        conn.setblocking(False)
        while read(conn):
            pass
    os.write(ready_w, json.dumps(stats).encode())


@contextlib.contextmanager
def fake_master(sock_path: str, folder: str | None = None) -> Iterator[dict[str, Any]]:
    """A fake master run by uid nobody on ``sock_path`` (in ``folder``, which it creates first
    when given). The dict yielded is filled, once the block ends, with what it received:
    ``connections``, ``bytes`` and ``fds``."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            os.close(ready_r)
            os.close(stop_w)
            _attacker(sock_path, folder, ready_w, stop_r)
            code = 0
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(ready_w, f"E{exc!r}".encode())
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(stop_r)
    report: dict[str, Any] = {}
    try:
        ready, _, _ = select.select([ready_r], [], [], 10)
        first = os.read(ready_r, 1) if ready else b""
        assert first == b"R", f"the fake master did not start: {first + os.read(ready_r, 999)!r}"
        yield report
    finally:
        os.close(stop_w)
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([ready_r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(ready_r, 4096) if ready else b""
            if not chunk:
                break
            data += chunk
        os.close(ready_r)
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        report.update(json.loads(data) if data.startswith(b"{") else {"error": data.decode()})


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp (mode 1777) that the other uid can reach, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="zeuspy-trust-", dir="/tmp"))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def long_project(tmp_path: Path, mark: str) -> Project:
    """A project whose socket path is too long, so that it falls back to the runtime folder."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    return Project(deep, mark).write()


def one_line(text: bytes) -> str:
    lines = [line for line in text.decode(errors="replace").splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    assert "Traceback" not in lines[0]
    return lines[0]


# -- 1. the client trusts only its own master ------------------------------------------------------
@needs_root
def test_client_refuses_a_runtime_folder_another_user_created(
        project: Project, tmp_path: Path, shared_tmp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    victim = long_project(tmp_path, project.mark)
    env = victim.env(XDG_RUNTIME_DIR=str(shared_tmp))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared_tmp))
    sock_path = os.fsdecode(paths.socket_path(os.fsencode(victim.root)))
    folder = str(shared_tmp / "zeuspy")
    assert sock_path.startswith(folder + "/")
    with fake_master(sock_path, folder) as received:
        result = victim.run("hello", "secret", env={**env, "PASSWORD": "hunter2"},
                           input=b"typed password\n")
    line = one_line(result.stderr)
    assert result.returncode == 1 and result.stdout == b""
    assert folder in line and "uid 65534" in line and "rm -r" in line, line
    assert received == {"connections": 0, "bytes": 0, "fds": 0}


@needs_root
def test_client_refuses_the_real_tmp_fallback_of_another_user(project: Project,
                                                              tmp_path: Path) -> None:
    folder = f"/tmp/zeuspy-{os.getuid()}"
    if os.path.lexists(folder):
        pytest.skip(f"{folder} exists already (a master of this uid may use it)")
    victim = long_project(tmp_path, project.mark)
    env = victim.env()
    env.pop("XDG_RUNTIME_DIR", None)
    sock_path = f"{folder}/{paths._fnv1a(os.fsencode(victim.root))}.sock"
    try:
        with fake_master(sock_path, folder) as received:
            result = victim.run("hello", env=env, input=b"typed password\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert folder in line and "another user may be listening" in line, line
    assert received == {"connections": 0, "bytes": 0, "fds": 0}


@needs_root
def test_client_refuses_a_socket_another_user_serves(project: Project,
                                                     shared_tmp: Path) -> None:
    """ZEUSSOCK (or any path) served by another uid: the peer's credentials refuse it, before a
    byte or an fd is sent."""
    sock_path = str(shared_tmp / "evil.sock")
    with fake_master(sock_path) as received:
        started = time.monotonic()
        result = project.run("hello", env=project.env(ZEUSSOCK=sock_path),
                             input=b"typed password\n")
        took = time.monotonic() - started
    line = one_line(result.stderr)
    assert result.returncode == 1 and result.stdout == b""
    assert f"{sock_path} is served by uid 65534" in line and "refusing" in line, line
    assert received["bytes"] == 0 and received["fds"] == 0, received
    assert received["connections"] <= 1
    assert took < 5


@needs_root
@pytest.mark.parametrize("word", ["status", "restart", "stop"])
def test_builtins_refuse_a_socket_another_user_serves(project: Project, shared_tmp: Path,
                                                      word: str) -> None:
    """`zeus status`, `restart` and `stop` ask over the socket too: its peer is checked before
    the question goes out (the answer would be another user's word)."""
    sock_path = str(shared_tmp / "evil.sock")
    with fake_master(sock_path) as received:
        result = project.run(word, env=project.env(ZEUSSOCK=sock_path))
    line = one_line(result.stderr)
    assert result.returncode == 1 and result.stdout == b"", result
    assert f"{sock_path} is served by uid 65534" in line, line
    assert received["bytes"] == 0 and received["fds"] == 0, received


@needs_root
def test_master_refuses_a_runtime_folder_another_user_created(project: Project,
                                                              tmp_path: Path,
                                                              shared_tmp: Path) -> None:
    victim = long_project(tmp_path, project.mark)
    folder = shared_tmp / "zeuspy"
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.mkdir(folder, 0o755)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert folder.stat().st_uid == NOBODY
    result = victim.run("start", env=victim.env(XDG_RUNTIME_DIR=str(shared_tmp)), timeout=20)
    line = one_line(result.stderr + result.stdout)
    assert result.returncode == 1
    assert str(folder) in line and "uid 65534" in line, line
    assert os.listdir(folder) == []


def test_master_refuses_a_runtime_folder_open_to_others(project: Project, tmp_path: Path,
                                                        shared_tmp: Path) -> None:
    victim = long_project(tmp_path, project.mark)
    folder = shared_tmp / "zeuspy"
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    result = victim.run("start", env=victim.env(XDG_RUNTIME_DIR=str(shared_tmp)), timeout=20)
    line = one_line(result.stderr + result.stdout)
    assert result.returncode == 1 and "open to others" in line, line
    # The client refuses it too, with the same words.
    result = victim.run("hello", env=victim.env(XDG_RUNTIME_DIR=str(shared_tmp)))
    assert result.returncode == 1 and "open to others" in one_line(result.stderr)


def test_a_symlinked_runtime_folder_is_refused(project: Project, tmp_path: Path,
                                               shared_tmp: Path) -> None:
    victim = long_project(tmp_path, project.mark)
    elsewhere = shared_tmp / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (shared_tmp / "zeuspy").symlink_to(elsewhere)
    env = victim.env(XDG_RUNTIME_DIR=str(shared_tmp))
    for args in (("start",), ("hello",)):
        result = victim.run(*args, env=env, timeout=20)
        line = one_line(result.stderr + result.stdout)
        assert result.returncode == 1 and "is a symlink" in line, (args, line)
    assert os.listdir(elsewhere) == []


def test_own_master_in_the_runtime_folder_still_serves(project: Project, tmp_path: Path,
                                                       shared_tmp: Path) -> None:
    """The checks let the user's own master through: folder 0700 and ours, peer our uid."""
    victim = long_project(tmp_path, project.mark)
    env = victim.env(XDG_RUNTIME_DIR=str(shared_tmp))
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(shared_tmp)  # the Master helper takes os.environ
    try:
        master = Master(victim)
    finally:
        if previous is None:
            os.environ.pop("XDG_RUNTIME_DIR")
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    try:
        master.wait_ready("boot", "app")
        result = victim.run("hello", "me", env=env)
        assert (result.returncode, result.stdout) == (0, b"hello me\n"), result.stderr
    finally:
        assert master.stop() == 0


# -- 2. state files are never followed -------------------------------------------------------------
def start_refused(project: Project, *args: str) -> str:
    """``zeus start`` must refuse at once with one line (the master never runs)."""
    result = project.run("start", *args, timeout=20)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return one_line(result.stderr + result.stdout)


@pytest.mark.parametrize("name", [".zeus/master.pid", ".zeus.pid", ".zeus/master.log",
                                  ".zeus/.gitignore"])
@pytest.mark.parametrize("detach", [False, True])
def test_a_symlinked_state_file_is_never_followed(project: Project, tmp_path: Path, name: str,
                                                  detach: bool) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    (project.root / ".zeus").mkdir(mode=0o700)
    (project.root / name).symlink_to(target)
    line = start_refused(project, *(["--detach"] if detach else []))
    assert "symlink" in line and name.rpartition("/")[2] in line and "remove it" in line, line
    assert target.read_text() == "precious\n"
    assert not (project.root / ".zeus.sock").exists()


@pytest.mark.parametrize("detach", [False, True])
def test_a_symlinked_state_folder_is_never_followed(project: Project, tmp_path: Path,
                                                    detach: bool) -> None:
    other = tmp_path / "someone-elses"
    other.mkdir()
    (project.root / ".zeus").symlink_to(other)
    line = start_refused(project, *(["--detach"] if detach else []))
    assert ".zeus is a symlink" in line and "remove it" in line, line
    assert os.listdir(other) == []


def test_a_dangling_pid_file_symlink_creates_nothing(project: Project, tmp_path: Path) -> None:
    target = tmp_path / "created-by-zeus"
    (project.root / ".zeus").mkdir(mode=0o700)
    (project.root / ".zeus" / "master.pid").symlink_to(target)
    assert "symlink" in start_refused(project)
    assert not target.exists()


@pytest.mark.parametrize(("name", "kind", "words"), [
    (".zeus", "file", ".zeus is a file, not the master's state folder"),
    (".zeus.pid", "folder", ".zeus.pid is not a pid file"),
    (".zeus/master.pid", "folder", "master.pid is a folder, not the master's pid file"),
    (".zeus/master.log", "folder", "master.log is a folder, not the master's log"),
    (".zeus/master.log", "fifo", "master.log is a FIFO, not the master's log"),
])
def test_a_state_file_of_the_wrong_type_is_one_line(project: Project, name: str, kind: str,
                                                    words: str) -> None:
    path = project.root / name
    if name.startswith(".zeus/"):
        (project.root / ".zeus").mkdir(mode=0o700)
    if kind == "file":
        path.write_text("x\n")
    elif kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)  # opening it for writing must not hang
    line = start_refused(project)
    assert words in line and "remove it" in line, line


@needs_root
def test_a_state_folder_of_another_user_is_refused(project: Project) -> None:
    folder = project.root / ".zeus"
    folder.mkdir(mode=0o777)
    os.chown(folder, NOBODY, NOBODY)
    line = start_refused(project)
    assert f"{folder} belongs to uid 65534, not to you" in line and "remove it" in line, line
    assert os.listdir(folder) == []


def test_state_folder_is_tightened_and_an_old_pid_file_still_counts(project: Project) -> None:
    """A loose ``.zeus`` of ours is made private; an older master's locked ``.zeus.pid`` still
    keeps a second master out."""
    (project.root / ".zeus").mkdir(mode=0o755)
    import fcntl

    legacy = project.root / ".zeus.pid"
    holder = subprocess.Popen(["sleep", "30"])
    try:
        legacy.write_text(f"{holder.pid}\n")
        fd = os.open(legacy, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            line = start_refused(project)
            assert "already running" in line and str(holder.pid) in line, line
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait(10)
    assert (project.root / ".zeus").stat().st_mode & 0o777 == 0o700


# -- 5. a stopped or wedged master is named --------------------------------------------------------
class Client:
    """``zeus ARGS`` with its output in files, not pipes: the stdio fds a client hands over stay
    queued on a master that does not accept (stopped, wedged) until it does, so a pipe would see
    EOF only then (docs/architecture.md, Trust)."""

    def __init__(self, project: Project, stem: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.out_path, self.err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([ZEUS, *args], cwd=project.root,
                                         env=env or project.env(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)

    def finish(self, timeout: float) -> tuple[int, bytes, bytes]:
        """(status, stdout, stderr) once it exits; killed (and the test failed) after
        ``timeout``."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"the client did not leave within {timeout} s") from None
        return code, self.out_path.read_bytes(), self.err_path.read_bytes()


def test_a_stopped_master_with_a_full_backlog_is_named(master: Master, project: Project,
                                                      tmp_path: Path) -> None:
    """Connections beyond its listen backlog fail at once (EAGAIN): the client retries, and
    names the master from its pid file after client_run.CONNECT_WAIT."""
    pid = master.proc.pid
    sock_path = str(project.root / ".zeus.sock")
    held: list[socket.socket] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: procs.process_state(pid) == procs.STOPPED, timeout=5,
                 what="the master stopped")
        for _ in range(2000):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(sock_path)
            except BlockingIOError:
                filler.close()
                break
            held.append(filler)
        else:
            pytest.fail("the backlog never filled")
        started = time.monotonic()
        code, out, err = Client(project, tmp_path / "client", "hello").finish(
            client_run.CONNECT_WAIT + 10)
        took = time.monotonic() - started
    finally:
        for filler in held:
            filler.close()
        os.kill(pid, signal.SIGCONT)
    line = one_line(err)
    assert code == 1 and out == b""
    assert f"the master (pid {pid}) is stopped" in line, line
    assert "did not accept the connection" in line and "`fg`" in line, line
    assert client_run.CONNECT_WAIT - 0.5 < took < client_run.CONNECT_WAIT + 3, took
    result = project.run("hello", "again", timeout=20)
    assert (result.returncode, result.stdout) == (0, b"hello again\n"), result.stderr


def test_a_stopped_master_is_named_and_comes_back(master: Master, project: Project,
                                                  tmp_path: Path) -> None:
    pid = int((project.root / ".zeus" / "master.pid").read_text())
    assert pid == master.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: procs.process_state(pid) == procs.STOPPED, timeout=5,
                 what="the master stopped")
        assert masterstate.master_state(os.fsencode(project.root)) == masterstate.MasterState(
            pid, procs.STOPPED)
        started = time.monotonic()
        clients = [Client(project, tmp_path / f"client{n}", "hello") for n in range(3)]
        outcomes = [client.finish(NAMED_WITHIN + 10) for client in clients]
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    for code, out, err in outcomes:
        line = one_line(err)
        assert code == 1 and out == b"", (code, out, err)
        assert f"the master (pid {pid}) is stopped" in line and "`fg`" in line, line
        assert f"kill -CONT {pid}" in line
    assert took < NAMED_WITHIN + 2, took
    # Continued, it serves again.
    result = project.run("hello", "again", timeout=20)
    assert (result.returncode, result.stdout) == (0, b"hello again\n"), result.stderr


SLOW_PLAN = """
import time
import zeuspy

class SlowPlan(zeuspy.Plan):
    def boot(self):
        pass

    def app(self):
        time.sleep(%(boot)s)

    def hello(self, argv):
        print("hello", *argv)
"""


def test_a_master_booting_a_phase_is_waited_for(project: Project) -> None:
    """A phase that boots for longer than PID_WAIT: the client looks at the master (running,
    answering ``Q:status``) and keeps waiting for the pid."""
    boot = client_run.PID_WAIT + 2.5
    project.write(tree={"boot": {"app": {"hello": None}}}, plan=SLOW_PLAN % {"boot": boot})
    master = Master(project)
    try:
        master.wait_ready("boot")
        started = time.monotonic()
        result = project.run("hello", "patient", timeout=boot + 20)
        took = time.monotonic() - started
        assert (result.returncode, result.stdout) == (0, b"hello patient\n"), result.stderr
        assert b"waiting for phase app to boot" in result.stderr
        assert took > client_run.PID_WAIT  # the watch did look at the master meanwhile
    finally:
        assert master.stop() == 0


def test_a_wedged_master_is_named(project: Project, tmp_path: Path) -> None:
    """A master that takes the request but never answers anything, not even ``Q:status``: named
    after watch.UNANSWERED with its pid (here the test itself listens, never accepting)."""
    sock_path = str(tmp_path / "wedged.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(8)
    try:
        started = time.monotonic()
        client = Client(project, tmp_path / "client", "hello",
                        env=project.env(ZEUSSOCK=sock_path))
        code, out, err = client.finish(client_run.PID_WAIT + watch.UNANSWERED + 15)
        took = time.monotonic() - started
    finally:
        listener.close()
    line = one_line(err)
    assert code == 1 and out == b""
    assert f"the master (pid {os.getpid()}) is running and did not answer" in line, line
    assert client_run.PID_WAIT + watch.UNANSWERED - 1 < took < (client_run.PID_WAIT
                                                                 + watch.UNANSWERED + 5)


def test_masterstate_names_each_state(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert procs.process_state(child.pid) == procs.RUNNING
        os.kill(child.pid, signal.SIGSTOP)
        wait_for(lambda: procs.process_state(child.pid) == procs.STOPPED, timeout=5,
                 what="stopped")
        os.kill(child.pid, signal.SIGCONT)
        wait_for(lambda: procs.process_state(child.pid) == procs.RUNNING, timeout=5,
                 what="running")
        child.kill()
        wait_for(lambda: procs.process_state(child.pid) == procs.ZOMBIE, timeout=5,
                 what="zombie")
    finally:
        child.kill()
        child.wait(10)
    assert procs.process_state(child.pid) == procs.GONE
    root = os.fsencode(tmp_path)
    assert masterstate.master_state(root) == masterstate.MasterState(None, masterstate.NONE)
    assert masterstate.master_state(root).describe() == "no master is running"
    # A pid file nobody holds names a master that is gone, whatever runs with that pid now.
    (tmp_path / ".zeus").mkdir()
    (tmp_path / ".zeus" / "master.pid").write_text(f"{os.getpid()}\n")
    state = masterstate.master_state(root)
    assert state == masterstate.MasterState(os.getpid(), procs.GONE)
    assert state.describe() == f"the master (pid {os.getpid()}) is gone"
