"""The client stays light: what it imports, and its hand-written T: message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from zeuspy.client import run
from zeuspy.protocol import wire
from zeuspy.protocol.messages import CommandRequest, parse_command_request
from zeuspy.shim.command import read_arguments

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)
ZEUS = PYTHON.parent / "zeus"
#: Modules the client must not import: each costs milliseconds on every command.
HEAVY = ["asyncio", "rich", "socket", "signal", "enum", "dataclasses", "os", "argparse", "json",
         "typing", "re"]


def imports_of(statement: str) -> list[str]:
    """Every module imported by ``statement`` in a bare interpreter started as the launcher
    starts it (-I -S), with the repo's src first on the path, in import order."""
    result = subprocess.run(
        [str(PYTHON), "-IS", "-X", "importtime", "-c",
         f"import sys; sys.path.insert(0, 'src'); {statement}"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    names = [line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:")]
    return [name for name in names if name and name != "imported package"]


@pytest.fixture(scope="module")
def client_imports() -> list[str]:
    names = imports_of("import zeuspy.cli, zeuspy.client.run")
    assert "zeuspy.client.run" in names  # the parse found real lines
    assert "zeuspy" in names
    return names


def test_the_import_check_can_fail() -> None:
    names = imports_of("import zeuspy.protocol.messages")
    assert "dataclasses" in names
    assert "re" in names or any(n.startswith("re.") for n in names) or "enum" in names


def test_imports_come_from_the_repo() -> None:
    result = subprocess.run(
        [str(PYTHON), "-IS", "-c",
         "import sys; sys.path.insert(0, 'src'); import zeuspy.client.run as r; print(r.__file__)"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert Path(result.stdout.strip()) == REPO / "src" / "zeuspy" / "client" / "run.py"


@pytest.mark.parametrize("module", HEAVY)
def test_client_does_not_import(client_imports: list[str], module: str) -> None:
    found = [name for name in client_imports if name == module or name.startswith(module + ".")]
    assert not found, f"the client imports {found}"


def test_client_uses_the_low_level_modules(client_imports: list[str]) -> None:
    # the cheap C modules stand in for the heavy ones above
    assert {"_socket", "posix", "_signal"} <= set(client_imports)


def test_zeus_version_through_the_launcher() -> None:
    result = subprocess.run([str(ZEUS), "version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("zeuspy ")


# -- the hand-written T: message -------------------------------------------------------------------
def handshake_of(sock: socket.socket, timeout: float = 10.0) -> tuple[list[str], list[int]]:
    """Read a client's handshake: messages until its three fds arrived."""
    sock.settimeout(timeout)
    reader = wire.FrameReader()
    messages: list[str] = []
    while len(reader.fds) < 6 and not reader.eof:
        data, fds = wire.receive(sock)
        reader.feed(data, fds)
        messages.extend(reader.messages())
    fds = list(reader.fds)
    reader.fds.clear()
    assert len(fds) == 6, f"handshake ended early: {messages}"
    return messages, fds


@pytest.mark.parametrize(("command", "args"), [
    ("hello", []),
    ("tést", ["a", "", "b c", ""]),
    ("with:colon", ["x"]),
])
def test_session_handshake_matches_command_request(command: str, args: list[str],
                                                   no_fd_leak: object) -> None:
    client, master = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    session = run.ClientSession(client, command, args, tty=False)
    fds: list[int] = []
    try:
        session.handshake()
        messages, fds = handshake_of(master)
        assert messages[0] == CommandRequest(len(args), os.getpid(), command).format()
        assert parse_command_request(messages[0]) == CommandRequest(len(args), os.getpid(), command)
        assert len(messages) == 2 and messages[1].startswith("X:zeuspy=1;stdio=1;world=")
        assert read_arguments(fds.pop(0), len(args)) == args
        os.write(fds[0], b"to stdout")
        assert os.read(session.out.fd, 100) == b"to stdout"
        # The stdio fds after the offer: without a terminal, this process's own 0, 1 and 2.
        for own, sent in zip((0, 1, 2), fds[2:], strict=True):
            mine, theirs = os.fstat(own), os.fstat(sent)
            assert (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    finally:
        wire.close_fds(fds)
        for stream in {id(session.out): session.out, id(session.err): session.err}.values():
            assert stream.sock is not None
            stream.sock.close()
        if session.args_sock is not None:
            session.args_sock.close()
        client.close()
        master.close()


def test_real_client_against_a_fake_master(tmp_path: Path) -> None:
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(10)
    env = {**os.environ, "ZEUSSOCK": str(path)}
    proc = subprocess.Popen([str(ZEUS), "hello", "a", ""], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    fds: list[int] = []
    try:
        conn, _ = listener.accept()
        with conn:
            messages, fds = handshake_of(conn)
            expected = CommandRequest(2, proc.pid, "hello").format()
            assert wire.encode(messages[0]) == wire.encode(expected)
            assert read_arguments(fds.pop(0), 2) == ["a", ""]
            # Answer as a master whose phase crashed: pid 0, the error on stdout, status 3.
            wire.send_message(conn, "0")
            os.write(fds[0], b"boom\n")
            wire.close_fds(fds)
            fds = []
            wire.send_message(conn, "3")
        out, err = proc.communicate(timeout=10)
    finally:
        wire.close_fds(fds)
        listener.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (3, b"boom\n", b"")
