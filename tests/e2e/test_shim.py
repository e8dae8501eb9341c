"""The zeuspy shim driven by a fake master written against protocol.md (no zeuspy master code)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.harness.processes import cmdline
from tests.harness.project import Project
from tests.harness.waits import wait_for
from zeuspy.protocol import wire

PLAN = """
import sys
import zeuspy

class ShimPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        import decimal

    def broken(self):
        import fractions
        raise RuntimeError("broken on purpose")

    def args(self, argv):
        print(repr(argv), sys.argv[0])
        return len(argv)
"""

TIMEOUT = 10.0


class FakeMaster:
    """The master's side of the protocol, step by step and blocking (with timeouts)."""

    def __init__(self, project: Project, offer: bool = False) -> None:
        self.readers: dict[int, wire.FrameReader] = {}
        self.pending: dict[int, list[str]] = {}
        self.bootstrap, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.bootstrap.settimeout(TIMEOUT)
        env = project.env(ZEUS_MASTER_FD=str(remote.fileno()))
        if offer:
            env["ZEUSPY_EXTENSIONS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zeuspy.shim", str(project.root / "zeus_plan.py")],
            cwd=project.root, env=env, pass_fds=[remote.fileno()],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        remote.close()

    def accept_phase(self) -> tuple[socket.socket, str, int]:
        """Registration: the phase's stream socket, its P: message and its feature pipe fd."""
        _, fds = wire.receive(self.bootstrap)
        assert len(fds) == 1
        sock = socket.socket(fileno=fds[0])
        sock.settimeout(TIMEOUT)
        assert sock.type == socket.SOCK_STREAM
        reader = wire.FrameReader()
        while not reader.fds:
            data, got = wire.receive(sock)
            assert data or got, "phase closed its socket while registering"
            reader.feed(data, got)
        messages = reader.messages()
        assert messages[0].startswith("P:")
        self.readers[sock.fileno()] = reader
        self.pending[sock.fileno()] = messages[1:]
        return sock, messages[0], reader.fds[0]

    def next_message(self, sock: socket.socket) -> str:
        reader = self.readers.setdefault(sock.fileno(), wire.FrameReader())
        while True:
            if self.pending.get(sock.fileno()):
                return self.pending[sock.fileno()].pop(0)
            data, fds = wire.receive(sock)
            wire.close_fds(fds)
            assert data, "socket closed"
            reader.feed(data)
            self.pending.setdefault(sock.fileno(), []).extend(reader.messages())

    def close(self) -> None:
        self.bootstrap.close()
        self.proc.kill()
        self.proc.wait(TIMEOUT)


def read_features(fd: int) -> set[str]:
    os.set_blocking(fd, False)
    data = b""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            if data.endswith(b"\n"):
                break
            time.sleep(0.01)
            continue
        if not chunk:
            break
        data += chunk
    return {line for line in data.decode().splitlines() if line}


@pytest.fixture
def fake(project: Project) -> Iterator[FakeMaster]:
    project.write(tree={"boot": {"app": {"args": None}, "broken": {}}}, plan=PLAN)
    master = FakeMaster(project)
    yield master
    master.close()


def test_root_registers_reports_features_and_ok(fake: FakeMaster) -> None:
    sock, registration, features = fake.accept_phase()
    assert registration == f"P:{fake.proc.pid}:0:boot"
    # No extension was offered: the shim speaks the legacy protocol only.
    assert fake.next_message(sock) == "R:OK"
    files = read_features(features)
    assert any(f.endswith("/json/__init__.py") for f in files), files
    assert all(os.path.isabs(f) for f in files)


def test_extension_only_when_offered(project: Project) -> None:
    project.write(tree={"boot": {}}, plan=PLAN)
    fake = FakeMaster(project, offer=True)
    try:
        sock, _, _ = fake.accept_phase()
        assert fake.next_message(sock) == "X:zeuspy=1;caps=ctty,handover,world,stdio,signals"
        assert fake.next_message(sock) == "R:OK"
    finally:
        fake.close()


def test_child_phase_and_command(fake: FakeMaster, project: Project) -> None:
    root, _, _ = fake.accept_phase()
    wait_for(lambda: fake.next_message(root) == "R:OK", what="root ready")
    root.sendall(wire.encode("S:app"))
    app, registration, features = fake.accept_phase()
    pid = int(registration.split(":")[1])
    assert registration == f"P:{pid}:{fake.proc.pid}:app"
    assert fake.next_message(app) == "R:OK"
    assert any(f.endswith("/decimal.py") for f in read_features(features))
    assert cmdline(pid).startswith("zeus phase: app")

    # A command: runner socket, header, three fds, arguments with trailing empties.
    app.sendall(wire.encode("C:args"))
    _, fds = wire.receive(app)
    assert len(fds) == 1
    runner = socket.socket(fileno=fds[0])
    runner.settimeout(TIMEOUT)
    assert runner.type == socket.SOCK_DGRAM
    args_local, args_remote = socket.socketpair()
    out_local, out_remote = socket.socketpair()
    argv = ["a b", "", "ü", "-x", ""]
    wire.send_message(runner, f"{os.getpid()}:{len(argv)}")
    for fd in (args_remote.fileno(), out_remote.fileno(), out_remote.fileno()):
        wire.send_fd(runner, fd)
    args_remote.close()
    out_remote.close()
    args_local.sendall(b"".join(a.encode() + b"\0" for a in argv))
    args_local.close()
    command = runner.recv(100).rstrip(b"\0").decode()
    assert command.startswith("P:") and command.endswith(f":{pid}:")
    status = runner.recv(100).rstrip(b"\0").decode()
    assert status == str(len(argv))
    out_local.settimeout(TIMEOUT)
    output = b""
    while chunk := out_local.recv(65536):
        output += chunk
    assert output.decode() == f"{argv!r} args\n"


def test_failed_action_reports_traceback_and_its_files(fake: FakeMaster) -> None:
    root, _, _ = fake.accept_phase()
    wait_for(lambda: fake.next_message(root) == "R:OK", what="root ready")
    root.sendall(wire.encode("S:broken"))
    broken, _, features = fake.accept_phase()
    result = fake.next_message(broken)
    assert result.startswith("R:Traceback (most recent call last):")
    assert "RuntimeError: broken on purpose" in result
    assert "zeuspy/shim" not in result  # the shim's own frames are not the user's problem
    files = read_features(features)
    assert any(f.endswith("zeus_plan.py") for f in files)
    assert any(f.endswith("/fractions.py") for f in files)
    assert broken.recv(10) == b""  # the crashed phase exits


def test_shim_refuses_to_run_without_a_master(project: Project) -> None:
    env = project.env()
    env.pop("ZEUS_MASTER_FD", None)
    result = subprocess.run([sys.executable, "-m", "zeuspy.shim", "zeus_plan.py"],
                            cwd=project.root, env=env, capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert b"ZEUS_MASTER_FD is not set" in result.stderr
