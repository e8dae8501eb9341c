"""Soak and reload under load: thousands of commands from several clients at once, then commands
running while the app's files change and the master restarts; every command gets its exact
output and status, and the master ends where it began (fds, RSS, no zombies, nothing running)."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable

from tests.harness.legacy_client import run_raw
from tests.harness.master import Master
from tests.harness.processes import titled
from tests.harness.project import ZEUS, Project, atomic_save
from tests.harness.waits import BOOT_TIMEOUT, wait_for

from stress.support import FAST, TABLE, Figures, Resting, count

WORKERS = 4
SEED = int(os.environ.get("ZEUSPY_STRESS_SEED", "11"))


def _checked_command(resting: Resting, rng: random.Random) -> Callable[[], str | None]:
    """One random command and its check (None: as expected, else what went wrong)."""
    kind = rng.choice(["hello", "hello", "exitwith", "cat", "zeus"])
    if kind == "hello":
        args = [f"a{rng.randrange(10**6)}" for _ in range(rng.randrange(4))]

        def hello() -> str | None:
            got = run_raw(resting.sock, "hello", args)
            want = ("hello " + " ".join(args)).rstrip() + "\n"
            return None if (got.status, got.stdout) == (0, want.encode()) else repr(got)
        return hello
    if kind == "exitwith":
        code = rng.randrange(256)

        def exitwith() -> str | None:
            got = run_raw(resting.sock, "exitwith", [str(code)])
            return None if got.status == code else repr(got)
        return exitwith
    if kind == "cat":
        data = rng.randbytes(rng.randrange(1 << 16))

        def cat() -> str | None:
            got = run_raw(resting.sock, "cat", [], stdin=data)
            ok = got.status == 0 and got.stdout == data
            return None if ok else f"cat: {len(got.stdout)} of {len(data)} bytes, {got.status}"
        return cat
    word = f"w{rng.randrange(10**6)}"

    def real_client() -> str | None:
        done = subprocess.run([ZEUS, "hello", word], cwd=resting.master.project.root,
                              env=resting.master.project.env(), capture_output=True, timeout=30)
        ok = (done.returncode, done.stdout) == (0, f"hello {word}\n".encode())
        return None if ok else repr(done)
    return real_client


def _run_workers(jobs: list[Callable[[], str | None]], figures: Figures,
                 during: Callable[[], None] | None = None) -> list[str]:
    """Run ``jobs`` on :data:`WORKERS` threads; their latencies go to ``figures``; the failures
    are returned. ``during`` runs on this thread meanwhile."""
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(jobs))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop()
            started = time.monotonic()
            try:
                problem = job()
            except Exception as exc:  # a hung or broken command is a failure like another
                problem = f"{type(exc).__name__}: {exc}"
            with lock:
                figures.latencies.append(time.monotonic() - started)
                if problem is not None:
                    failures.append(problem)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    if during is not None:
        during()
    for thread in threads:
        thread.join(600)
    return failures


def test_soak(project: Project, master: Master, resting: Resting) -> None:
    rng = random.Random(SEED)
    total = count(80, 4000)
    figures = Figures("soak: commands", count=total)
    jobs = [_checked_command(resting, rng) for _ in range(total)]
    started = time.monotonic()

    def sample() -> None:
        while any(t.is_alive() for t in threading.enumerate() if t.daemon):
            resting.sample()
            time.sleep(0.2)

    failures = _run_workers(jobs, figures, sample)
    figures.seconds = time.monotonic() - started
    assert not failures, f"{len(failures)} of {total} commands went wrong: {failures[:5]}"
    wait_for(lambda: titled(project.mark, "zeus command:") ==
             titled(project.mark, "zeus command: (ready)"), 5.0, what="every command to end")
    resting.check(figures)
    TABLE.append(figures)


RELOAD_PLAN = """
import zeuspy

class Plan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        import appmod

    def hello(self, argv):
        print("hello", *argv)

    def value(self, argv):
        import appmod
        print(appmod.VALUE)
"""
RELOAD_TREE = {"boot": {"app": {"hello": None, "value": None}}}


def test_reload_under_load(project: Project) -> None:
    """Commands run without a pause while app's module changes (and one `zeus restart`):
    each prints a version that was written, none fails or hangs, the last version is served in
    the end, and one app phase is left."""
    project.write(tree=RELOAD_TREE, plan=RELOAD_PLAN)
    module = project.root / "appmod.py"
    module.write_text("VALUE = 0\n")
    master = Master(project, FAST)
    try:
        master.wait_ready("boot", "app")
        resting = Resting(master)
        changes = count(4, 60)
        per_change = 0.5
        figures = Figures("reload under load", count=0)
        written = {0}
        stop = threading.Event()
        failures: list[str] = []
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                started = time.monotonic()
                got = run_raw(resting.sock, "value", [], timeout=BOOT_TIMEOUT)
                with lock:
                    figures.latencies.append(time.monotonic() - started)
                    figures.count += 1
                    value = got.stdout.strip()
                    if got.status != 0 or not value.isdigit() or int(value) not in written:
                        failures.append(repr(got))

        started = time.monotonic()
        threads = [threading.Thread(target=load, daemon=True) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for version in range(1, changes + 1):
            time.sleep(per_change)
            with lock:
                written.add(version)
            # Saved whole: written in place, a boot could read the file truncated (no version).
            atomic_save(module, f"VALUE = {version}\n")
            if version == changes // 2:
                assert project.run("restart").returncode == 0
            resting.sample()
        last = changes
        wait_for(lambda: run_raw(resting.sock, "value", []).stdout == f"{last}\n".encode(),
                 BOOT_TIMEOUT, what="the last version to be served")
        stop.set()
        for thread in threads:
            thread.join(BOOT_TIMEOUT + 5)
        figures.seconds = time.monotonic() - started
        figures.notes = f"{changes} changes, 1 restart"
        assert not failures, f"{len(failures)} commands went wrong: {failures[:5]}"
        wait_for(lambda: len(titled(project.mark, "zeus phase: app")) == 1, 5.0,
                 what="one app phase")
        resting.check(figures)
        TABLE.append(figures)
    finally:
        assert master.stop() == 0
