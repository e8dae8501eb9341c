"""`make bench`: how fast is a command through zeuspy, against a bare interpreter's start-up?

A benchmark, not a test: it prints tables and two target lines, and fails only when something does
not work (a command exits non-zero, a master does not boot, a process is left behind).

Measured in one run, each interpreter named by its exact path:
  a) `python -I -S -c pass` and `python -c pass`                     (the floor; interleaved rounds)
  b) `zeus version`: the client's own start-up, no master needed       (interleaved rounds)
  c) `zeus noop` through a running master, stdout a pipe and a PTY     (interleaved rounds), and
     the same back to back (each run started when the last one ended: the latency of a stream of
     commands, each slowed by the work the one before left behind)
  d) the cold equivalent of (c): a fresh python runs the plan's phases and the command
  e) the same with a heavy plan whose boot imports a chunk of the standard library

Wall-clock times from time.perf_counter around spawning the process and collecting it (its
output read to EOF, its status reaped). Pipe runs use subprocess (stdout and stderr pipes). PTY
runs spawn the process with os.posix_spawn in a new session whose controlling terminal is a fresh
PTY (as a shell would: the client sees a foreground terminal and goes raw), so they carry their own
baseline: `python -I -S -c pass` spawned the same way. Each kind is warmed up (its first runs
discarded) before timing. Interleaved rounds run every kind once, in a new random order each round
(seeded), so that no kind always follows the same other kind.
"""

from __future__ import annotations

import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from projects import (
    HEAVY_PLAN,
    LIGHT_PLAN,
    BenchError,
    Master,
    bench_env,
    cold_argv,
    ensure_nothing_left,
    write_project,
)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
PYTHON = str(VENV_BIN / "python")
ZEUS = str(VENV_BIN / "zeus")

WARMUP = 5  # discarded runs of each kind
ROUNDS = 150  # interleaved rounds of (a), (b) and (c)
COLD_RUNS = 20  # (d) and the cold half of (e)
HEAVY_WARM_RUNS = 100  # the warm half of (e)
RUN_TIMEOUT = 20.0
TARGET_CLIENT = 1.2  # client start-up vs -I -S
TARGET_NOOP = 1.6  # no-op command vs -I -S
ORDER_SEED = 2  # the rounds' orders (any seed: fixed so that runs are comparable)
BACK_TO_BACK_RUNS = 100  # (c) again, each run started as soon as the last one ended

Runner = Callable[[list[str]], float]


# -- spawning -------------------------------------------------------------------------------------
def _check(argv: list[str], status: int, output: bytes, expect_output: bool) -> None:
    if status != 0 or (output.strip() and not expect_output):
        raise BenchError(f"{' '.join(argv[:3])} ... exited {status}; output:\n"
                         f"{output.decode(errors='replace')}")


def run_pipe(argv: list[str], expect_output: bool = False) -> float:
    """Milliseconds for ``argv`` with stdin /dev/null and stdout, stderr pipes read to EOF."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - start
    _check(argv, done.returncode, done.stdout + done.stderr, expect_output)
    return elapsed * 1000


def run_pty(argv: list[str], expect_output: bool = False) -> float:
    """Milliseconds for ``argv`` as a session leader on a fresh PTY (its controlling terminal, as
    stdin, stdout and stderr); the PTY's master end read until EOF (EIO), then the status reaped."""
    master_fd, slave_fd = os.openpty()
    try:
        slave_name = os.ttyname(slave_fd)
        start = time.perf_counter()
        # posix_spawn: setsid first, then the file actions; opening the PTY (without O_NOCTTY)
        # in the new session makes it the controlling terminal. Our fds are close-on-exec.
        pid = os.posix_spawn(argv[0], argv, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, slave_name, os.O_RDWR, 0),
            (os.POSIX_SPAWN_DUP2, 0, 1),
            (os.POSIX_SPAWN_DUP2, 0, 2),
        ])
        os.close(slave_fd)
        slave_fd = -1
        chunks = []
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            try:
                chunk = os.read(master_fd, 65536)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk or time.monotonic() > deadline:
                break
            chunks.append(chunk)
        _, wait_status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - start
    finally:
        os.close(master_fd)
        if slave_fd >= 0:
            os.close(slave_fd)
    _check(argv, os.waitstatus_to_exitcode(wait_status), b"".join(chunks), expect_output)
    return elapsed * 1000


# -- statistics and output ------------------------------------------------------------------------
class Row:
    def __init__(self, what: str, samples: list[float], baseline: Row | None = None) -> None:
        self.what = what
        self.samples = samples
        self.baseline = baseline

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank

    @property
    def ratio(self) -> float | None:
        return self.median / self.baseline.median if self.baseline is not None else None


def print_table(title: str, rows: list[Row]) -> None:
    width = max(len("what"), *(len(r.what) for r in rows))
    print(f"\n{title}")
    print(f"{'what':<{width}}  {'n':>4}  {'median ms':>9}  {'p90 ms':>8}  {'ratio vs -I -S':>14}")
    print(f"{'-' * width}  {'-' * 4}  {'-' * 9}  {'-' * 8}  {'-' * 14}")
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        print(f"{row.what:<{width}}  {len(row.samples):>4}  {row.median:>9.2f}  {row.p90:>8.2f}  "
              f"{ratio:>14}")


def target(label: str, value: float, limit: float) -> str:
    return f"{label} within {limit}x of -I -S: {'yes' if value <= limit else 'no'} ({value:.2f})"


def describe_machine() -> None:
    probe = subprocess.run(
        [PYTHON, "-c", "import sys, platform; print(sys.version.replace(chr(10), ' ')); "
         "print(platform.python_implementation())"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("zeuspy benchmark")
    print(f"python:   {PYTHON} -> {os.path.realpath(PYTHON)}")
    print(f"          {probe[1]} {probe[0]}")
    print(f"zeus:     {ZEUS}")
    print(f"machine:  {platform.platform()}, {platform.machine()}, nproc {cpus} "
          f"(cpu_count {os.cpu_count()})")
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load:     {load} (1, 5, 15 min)")
    except OSError:
        pass


# -- the measurements -----------------------------------------------------------------------------
def interleaved(kinds: list[tuple[str, Runner, list[str]]], rounds: int) -> dict[str, list[float]]:
    """Warm each kind up, then ``rounds`` rounds running every kind once, each round in a new
    random order. A fixed order would favour some kinds: a zeus command leaves work behind it
    (its teardown, the next spare's fork), which slows whatever runs next; in a fixed cycle one
    kind would nearly always follow another (the PTY run followed the pipe run in 5 of 6
    rounds, and paid for it)."""
    for _, runner, argv in kinds:
        for _ in range(WARMUP):
            runner(argv)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in kinds}
    order = random.Random(ORDER_SEED)
    for _ in range(rounds):
        for name, runner, argv in order.sample(kinds, len(kinds)):
            samples[name].append(runner(argv))
    return samples


def block(runner: Runner, argv: list[str], runs: int) -> list[float]:
    for _ in range(WARMUP):
        runner(argv)
    return [runner(argv) for _ in range(runs)]


def bench(work: Path, mark: str) -> list[Row]:
    env = bench_env(mark)
    os.environ.clear()
    os.environ.update(env)  # for the PTY runs (posix_spawn) and every subprocess
    light = write_project(work / "light", LIGHT_PLAN)
    heavy = write_project(work / "heavy", HEAVY_PLAN)
    # The client finds its project from the working directory: every run starts in the project.
    os.chdir(light)
    print(f"\nbooting the light plan in {light} ...", flush=True)
    master = Master(ZEUS, light, env)
    try:
        boot = master.wait_ready()
        print(f"ready after {boot:.2f} s; (a)-(c) interleaved: {WARMUP} warm-up runs of each, "
              f"then {ROUNDS} rounds", flush=True)
        started = time.monotonic()
        samples = interleaved([
            ("a1", run_pipe, [PYTHON, "-I", "-S", "-c", "pass"]),
            ("a2", run_pipe, [PYTHON, "-c", "pass"]),
            ("a3", run_pty, [PYTHON, "-I", "-S", "-c", "pass"]),
            ("b", lambda argv: run_pipe(argv, expect_output=True), [ZEUS, "version"]),
            ("c1", run_pipe, [ZEUS, "noop"]),
            ("c2", run_pty, [ZEUS, "noop"]),
        ], ROUNDS)
        print(f"  took {time.monotonic() - started:.1f} s; (d) cold light plan, "
              f"{COLD_RUNS} runs", flush=True)
        print(f"  (c) back to back: {BACK_TO_BACK_RUNS} runs of each", flush=True)
        back_pipe = block(run_pipe, [ZEUS, "noop"], BACK_TO_BACK_RUNS)
        back_pty = block(run_pty, [ZEUS, "noop"], BACK_TO_BACK_RUNS)
        cold_light = block(run_pipe, cold_argv(PYTHON, light), COLD_RUNS)
    finally:
        status = master.stop()
    if status != 0:
        raise BenchError(f"the light master exited with {status} on SIGTERM\n{master.details()}")

    os.chdir(heavy)
    print(f"booting the heavy plan in {heavy} ...", flush=True)
    master = Master(ZEUS, heavy, env)
    try:
        boot = master.wait_ready()
        print(f"ready after {boot:.2f} s; (e) warm {HEAVY_WARM_RUNS} runs, cold {COLD_RUNS} runs",
              flush=True)
        heavy_warm = block(run_pipe, [ZEUS, "noop"], HEAVY_WARM_RUNS)
        heavy_cold = block(run_pipe, cold_argv(PYTHON, heavy), COLD_RUNS)
    finally:
        status = master.stop()
    if status != 0:
        raise BenchError(f"the heavy master exited with {status} on SIGTERM\n{master.details()}")

    py = PYTHON
    base = Row(f"(a) {py} -I -S -c pass", samples["a1"])
    base.baseline = base
    pty_base = Row(f"(a) {py} -I -S -c pass   [pty]", samples["a3"])
    pty_base.baseline = pty_base
    return [
        base,
        Row(f"(a) {py} -c pass", samples["a2"], base),
        pty_base,
        Row("(b) zeus version   (client start-up, no master)", samples["b"], base),
        Row("(c) zeus noop, light plan   [pipe]", samples["c1"], base),
        Row("(c) zeus noop, light plan   [pty]", samples["c2"], pty_base),
        Row("(c) the same, back to back   [pipe]", back_pipe, base),
        Row("(c) the same, back to back   [pty]", back_pty, pty_base),
        Row(f"(d) cold {py}: light plan + noop", cold_light, base),
        Row("(e) zeus noop, heavy plan   [pipe]", heavy_warm, base),
        Row(f"(e) cold {py}: heavy plan + noop", heavy_cold, base),
    ]


def main() -> int:
    for tool in (PYTHON, ZEUS):
        if not os.access(tool, os.X_OK):
            print(f"bench: {tool} not found; run `make bench` (it installs the project)",
                  file=sys.stderr)
            return 2
    describe_machine()
    mark = uuid.uuid4().hex
    cwd = os.getcwd()
    saved_env = dict(os.environ)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="zeuspy-bench-"))
    failures = []
    rows: list[Row] = []
    try:
        rows = bench(work, mark)
    except BenchError as exc:
        failures.append(str(exc))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        try:
            ensure_nothing_left(mark)
        except BenchError as exc:
            failures.append(str(exc))
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        for failure in failures:
            print(f"\nbench FAILED: {failure}", file=sys.stderr)
        return 1

    print_table("results (wall-clock per process; [pty] rows compare with the [pty] baseline)",
                rows)
    client = rows[3].ratio or 0.0
    noop_pipe = rows[4].ratio or 0.0
    noop_pty = rows[5].ratio or 0.0
    heavy_speedup = rows[10].median / rows[9].median
    light_speedup = rows[8].median / rows[4].median
    print()
    print(target("client start-up", client, TARGET_CLIENT))
    print(target("no-op command median", noop_pipe, TARGET_NOOP) + "  [pipe]")
    print(target("no-op command median", noop_pty, TARGET_NOOP) + "  [pty, vs the pty baseline]")
    print(f"cold / warm no-op: light plan {light_speedup:.1f}x, heavy plan {heavy_speedup:.1f}x "
          f"(heavy boot imports {rows[10].median - rows[8].median:.0f} ms more of the stdlib)")
    print(f"\nbench done in {time.monotonic() - started:.1f} s; no process left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
