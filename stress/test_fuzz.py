"""Socket fuzz: whatever a peer sends on the master's socket (random or near-valid frames, stalls,
floods, wrong fds, idle connections, more connections than the master has fds), the master stays
up, serves the other clients, drops the offender, and gives back every fd and byte it took."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import socket
import threading
import time

from tests.harness.legacy_client import run_raw, send_fds
from tests.harness.processes import cpu_seconds, fd_count, memory_kb

from stress.support import TABLE, Figures, Resting, connections, count, dropped

#: The master's handshake timeout (master/request.py) plus slack: a silent peer is gone by then.
HANDSHAKE_DROP = 5.0 + 2.5
#: A client beside a hostile peer is served within this.
SERVED_WITHIN = 2.0
SEED = int(os.environ.get("ZEUSPY_STRESS_SEED", "11"))


def _served(resting: Resting) -> float:
    """Seconds a real command took beside whatever is going on; fails if it was not served."""
    started = time.monotonic()
    result = run_raw(resting.sock, "hello", ["beside"], timeout=SERVED_WITHIN + 3)
    took = time.monotonic() - started
    assert (result.status, result.stdout) == (0, b"hello beside\n"), result
    assert took < SERVED_WITHIN, f"a client beside took {took:.2f} s"
    return took


def _field(rng: random.Random) -> bytes:
    return rng.choice([
        b"", b"0", b"1", b"-1", b"3", str(2**64).encode(), b"9" * 60, b"x", b"hello",
        "é".encode(), b"\xff\xfe", b"::", b" ", bytes(rng.randrange(256) for _ in range(8)),
    ])


def _frame(rng: random.Random) -> bytes:
    """One near-valid message: a known or unknown kind, fields of every shape."""
    kind = rng.choice([b"T", b"Q", b"X", b"P", b"F", b"S", b"", b"T:0:1", b"Q:status"])
    body = b":".join(_field(rng) for _ in range(rng.randrange(5)))
    return kind + b":" + body + (b"\0" if rng.random() < 0.8 else b"")


def _fuzz_one(sock: socket.socket, rng: random.Random, spare_fd: int) -> None:
    with contextlib.suppress(OSError):
        choice = rng.random()
        if choice < 0.3:
            sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
        else:
            for _ in range(rng.randrange(1, 6)):
                frame = _frame(rng)
                if rng.random() < 0.3:
                    send_fds(sock, [spare_fd] * rng.randrange(1, 4), frame or b"\0")
                else:
                    sock.sendall(frame)
        if rng.random() < 0.5:
            sock.shutdown(socket.SHUT_WR)


def test_random_and_structured_frames(resting: Resting) -> None:
    rng = random.Random(SEED)
    total = count(60, 3000)
    figures = Figures("fuzz: random+structured frames", count=total)
    started = time.monotonic()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for batch in range(0, total, 20):
            with connections(resting.sock, min(20, total - batch)) as socks:
                for sock in socks:
                    _fuzz_one(sock, rng, null)
            resting.sample()
            if batch % 200 == 0:
                figures.latencies.append(_served(resting))
    finally:
        os.close(null)
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def test_idle_and_stalled_connections_are_dropped(resting: Resting) -> None:
    """Many connections at once that send nothing, half a message, a request without its fds,
    one fd of three: the others are served meanwhile, and each is dropped by the handshake
    timeout."""
    n = count(60, 800)
    figures = Figures("fuzz: idle and stalled", count=n)
    started = time.monotonic()
    _raise_own_fd_limit(n + 256)
    with connections(resting.sock, n) as socks:
        for i, sock in enumerate(socks):
            with contextlib.suppress(OSError):
                # nothing at all / half a message / a request without its fds / one fd of three
                if i % 4 == 1:
                    sock.sendall(b"T:0:1:hel")
                elif i % 4 == 2:
                    sock.sendall(b"T:0:1:hello\0")
                elif i % 4 == 3:
                    sock.sendall(b"T:0:1:hello\0")
                    send_fds(sock, [sock.fileno()])
        for _ in range(3):
            figures.latencies.append(_served(resting))
        resting.sample()
        gone = [dropped(sock, HANDSHAKE_DROP) for sock in socks]
        assert all(gone), f"{gone.count(False)} of {n} stalled connections were never dropped"
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def _flood(sock: socket.socket, data: bytes, total: int, outcome: dict[str, object]) -> None:
    sent = 0
    sock.settimeout(HANDSHAKE_DROP)
    try:
        while sent < total:
            sent += sock.send(data)
    except OSError as exc:
        outcome["error"] = exc
    outcome["sent"] = sent


def _flood_test(resting: Resting, name: str, data: bytes, total: int,
                prefix: bytes = b"") -> None:
    figures = Figures(name, count=total // 1024 // 1024)
    started = time.monotonic()
    outcome: dict[str, object] = {}
    with connections(resting.sock, 1) as (sock,):
        sock.sendall(prefix)
        thread = threading.Thread(target=_flood, args=(sock, data, total, outcome), daemon=True)
        thread.start()
        figures.latencies.append(_served(resting))
        while thread.is_alive() and time.monotonic() - started < 60:
            resting.sample()
            time.sleep(0.05)
        thread.join(5)
        assert not thread.is_alive(), "the flood never ended"
        sent = outcome.get("sent", 0)
        assert isinstance(sent, int)
        figures.notes = f"MiB offered; {sent >> 20} MiB sent before the drop"
        assert "error" in outcome or dropped(sock, 1.0), (
            f"the master read {total // 1024 // 1024} MiB from one connection without dropping it")
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def test_flood_of_one_endless_message_is_dropped(resting: Resting) -> None:
    _flood_test(resting, "fuzz: flood, no NUL", b"A" * 65536, count(16, 128) << 20)


def test_flood_of_messages_is_dropped(resting: Resting) -> None:
    """A request, then endless messages where its fds should be."""
    _flood_test(resting, "fuzz: flood, messages", b"P:1:x\0" * 10000, count(16, 128) << 20,
                prefix=b"T:0:1:hello\0")


def test_flood_of_fds_is_dropped(resting: Resting) -> None:
    n = count(300, 3000)
    figures = Figures("fuzz: flood of fds", count=n)
    started = time.monotonic()
    null = os.open(os.devnull, os.O_RDWR)
    peak = resting.fds
    try:
        with connections(resting.sock, 1) as (sock,):
            sock.sendall(b"T:0:1:hello\0")
            sent = 0
            with contextlib.suppress(OSError):
                for sent in range(1, n + 1):
                    send_fds(sock, [null])
                    if sent % 50 == 0:
                        peak = max(peak, fd_count(resting.pid))
            peak = max(peak, fd_count(resting.pid))
            figures.notes = f"{sent} fds sent, master peak {peak} fds"
            assert dropped(sock, HANDSHAKE_DROP), "a connection passing endless fds was kept"
    finally:
        os.close(null)
    assert peak <= resting.fds + 64, f"the master held {peak} fds ({resting.fds} at rest)"
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def _wrong_fd_cases() -> list[tuple[str, list[int], list[int]]]:
    """(name, fds sent before the request, the three fds of the request)."""
    null_ro = os.open(os.devnull, os.O_RDONLY)
    folder = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    read_end, write_end = os.pipe()
    event = os.eventfd(0) if hasattr(os, "eventfd") else null_ro
    return [
        ("stdout read-only", [], [null_ro, null_ro, null_ro]),
        ("stdout a directory", [], [null_ro, folder, folder]),
        ("stdout a pipe's read end", [], [null_ro, read_end, read_end]),
        ("args a pipe's write end", [], [write_end, null_ro, null_ro]),
        ("an eventfd", [], [event, event, event]),
        ("fds before the request", [null_ro, null_ro], [null_ro, null_ro, null_ro]),
    ]


def test_wrong_fds(resting: Resting) -> None:
    """Requests whose fds are the wrong kind of file, too many, early, or the master's own
    socket: each is answered or dropped (all at once: some wait for the shim's 5 s timeout)."""
    cases = _wrong_fd_cases()
    opened = {fd for _, before, three in cases for fd in (*before, *three)}
    rounds = count(1, 10)
    figures = Figures("fuzz: wrong fds", count=rounds * (len(cases) + 2))
    started = time.monotonic()
    try:
        for _ in range(rounds):
            with connections(resting.sock, len(cases) + 4) as socks:
                with contextlib.suppress(OSError):
                    for sock, (_, before, three) in zip(socks[:len(cases)], cases, strict=True):
                        for fd in before:
                            send_fds(sock, [fd])
                        sock.sendall(b"T:2:1:echoargs\0")
                        for fd in three:
                            send_fds(sock, [fd])
                    eight, own, loop, _ = socks[len(cases):]
                    eight.sendall(b"T:0:1:hello\0")
                    send_fds(eight, [loop.fileno()] * 8)
                    own.sendall(b"T:0:1:hello\0")
                    for fd in (min(opened), loop.fileno(), loop.fileno()):
                        send_fds(own, [fd])
                figures.latencies.append(_served(resting))
                names = [name for name, _, _ in cases] + ["eight fds at once",
                                                          "stdout the master's own socket"]
                for name, sock in zip(names, socks[:len(names)], strict=True):
                    assert dropped(sock, 15.0), f"{name}: no answer and no drop"
    finally:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def _raise_own_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(wanted, soft)), hard))


def test_more_connections_than_master_fds(resting: Resting) -> None:
    """At its fd limit (EMFILE) the master neither spins on accept nor stops for good: once the
    connections go, it serves again. The master's limit is lowered (prlimit) to a few fds above
    what it holds at rest, so this takes tens of connections, not thousands."""
    soft, hard = resource.prlimit(resting.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(resting.pid, resource.RLIMIT_NOFILE, (resting.fds + 16, hard))
    figures = Figures("fuzz: EMFILE")
    started = time.monotonic()
    opened: list[socket.socket] = []
    try:
        for _ in range(count(64, 256)):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(0.5)
            try:
                sock.connect(str(resting.sock))
            except OSError:  # the backlog is full: the master stopped accepting
                sock.close()
                break
            opened.append(sock)
        time.sleep(0.5)
        before = cpu_seconds(resting.pid)
        time.sleep(2.0)
        spent = cpu_seconds(resting.pid) - before
        figures.count = len(opened)
        figures.notes = f"master CPU {spent:.2f} s in 2 s at EMFILE"
        assert spent < 0.5, f"the master spun at EMFILE: {spent:.2f} s of CPU in 2 s"
    finally:
        for sock in opened:
            sock.close()
        resource.prlimit(resting.pid, resource.RLIMIT_NOFILE, (soft, hard))
    figures.latencies.append(_served(resting))
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)


def test_rss_stays_bounded_across_fuzz(resting: Resting) -> None:
    """Many connections' worth of near-valid queries: the master's memory does not grow."""
    rng = random.Random(SEED + 1)
    n = count(200, 5000)
    figures = Figures("fuzz: queries", count=n)
    started = time.monotonic()
    for _ in range(n):
        with connections(resting.sock, 1) as (sock,), contextlib.suppress(OSError):
            sock.sendall(rng.choice([b"Q:status\0", b"Q:" + b"x" * 1000 + b"\0", b"Q:\0"]))
            sock.recv(65536)
    rest = memory_kb(resting.pid)
    figures.notes = f"RSS {rest // 1024} MB after"
    figures.seconds = time.monotonic() - started
    resting.check(figures)
    TABLE.append(figures)
