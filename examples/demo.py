"""`make demo`: boot the hello app once with zeuspy, then run its commands warm and cold.

1. copies examples/hello_app to a temp folder and starts a master there (`zeus start`);
2. waits (bounded) until every phase of its zeus.json reports ready;
3. runs a few commands through the real client (`zeus greet World`, ...) and, for contrast, the
   same work in a cold interpreter (a fresh python imports the plan, runs the command's phases and
   the command), timing both;
4. prints a table and the commands' output, stops the master and checks nothing is left running.

Exits 0 on success and non-zero with a message on failure. The master is stopped on every path,
^C included. Every process the demo starts carries ``ZEUSPY_BENCH_MARK=<unique id>`` in its
environment, which is how the final check (bench/projects.py, shared with the benchmark) finds
leftovers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "bench"))  # the harness the benchmark uses too

from projects import (  # noqa: E402 - found through the line above
    COLD,
    STOP_TIMEOUT,
    BenchError,
    Master,
    bench_env,
    ensure_nothing_left,
)

VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
PYTHON = str(VENV_BIN / "python")
ZEUS = str(VENV_BIN / "zeus")

#: The commands shown, as typed after `zeus`.
COMMANDS = (("greet", "World"), ("hi",), ("about",), ("test",))
WARM_RUNS = 10  # timed runs per command through the master (after one untimed)
COLD_RUNS = 5  # timed cold runs per command (after one untimed)
BOOT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 20.0



#: A failure the demo reports in one message (and exits non-zero): the harness's own.
DemoError = BenchError


def read_plan(config: Path) -> tuple[list[str], dict[str, tuple[str, list[str]]]]:
    """From zeus.json: the phases in pre-order, and command-or-alias -> (command, its phases)."""
    phases: list[str] = []
    commands: dict[str, tuple[str, list[str]]] = {}

    def walk(name: str, body: dict[str, object], chain: list[str]) -> None:
        phases.append(name)
        for key, value in body.items():
            if isinstance(value, dict):
                walk(key, value, [*chain, name])
            else:
                entry = (key, [*chain, name])
                commands[key] = entry
                for alias in value or []:
                    commands[str(alias)] = entry

    walk("boot", json.loads(config.read_text())["plan"]["boot"], [])
    return phases, commands


def timed(argv: list[str], cwd: Path, env: dict[str, str]
          ) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        what = " ".join(argv[:4])
        raise DemoError(f"{what} ... did not finish in {COMMAND_TIMEOUT:.0f} s") from None
    return (time.perf_counter() - start) * 1000, done


def measure(argv: list[str], runs: int, cwd: Path, env: dict[str, str], what: str
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Median ms of ``runs`` timed runs after an untimed one; the last run's result."""
    times = []
    for index in range(runs + 1):
        elapsed, done = timed(argv, cwd, env)
        if done.returncode != 0:
            raise DemoError(f"{what} exited with status {done.returncode}\n"
                            f"stdout:\n{done.stdout}stderr:\n{done.stderr}")
        if index:
            times.append(elapsed)
    return statistics.median(times), done


def demo(work: Path, mark: str) -> None:
    project = work / "hello_app"
    shutil.copytree(HERE / "hello_app", project,
                    ignore=shutil.ignore_patterns("__pycache__", ".zeus", ".zeus.*"))
    phases, commands = read_plan(project / "zeus.json")
    env = bench_env(mark)
    version = subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"zeuspy demo: the hello app, copied to {project}")
    print(f"python: {PYTHON} ({version})")
    print(f"$ zeus start   ({ZEUS})")

    master = Master(ZEUS, project, env)
    rows = []
    try:
        took = master.wait_ready(tuple(phases), BOOT_TIMEOUT)
        for line in master.output.splitlines():
            print(f"  {line}")
        print(f"all phases ready {took:.2f} s after start\n")

        outputs = []
        for words in COMMANDS:
            command, chain = commands[words[0]]
            typed = " ".join(("zeus", *words))
            warm, done = measure([ZEUS, *words], WARM_RUNS, project, env, typed)
            cold_argv = [PYTHON, "-c", COLD, str(project / "zeus_plan.py"), ",".join(chain),
                         command, *words[1:]]
            cold, cold_done = measure(cold_argv, COLD_RUNS, project, env, f"cold {typed}")
            if cold_done.stdout != done.stdout:
                raise DemoError(f"{typed}: warm and cold output differ:\n{done.stdout!r}\n"
                                f"{cold_done.stdout!r}")
            rows.append((typed, cold, warm))
            outputs.append((typed, done))

        for typed, done in outputs:
            print(f"$ {typed}")
            for text in (done.stdout, done.stderr):
                if text:
                    print(text, end="" if text.endswith("\n") else "\n")
        print()
        width = max(len(r[0]) for r in rows)
        print(f"{'command':<{width}}  {'cold ms':>8}  {'warm ms':>8}  {'speed-up':>8}")
        print(f"{'-' * width}  {'-' * 8}  {'-' * 8}  {'-' * 8}")
        for typed, cold, warm in rows:
            print(f"{typed:<{width}}  {cold:8.1f}  {warm:8.1f}  {cold / warm:7.1f}x")
        print(f"cold: a fresh {PYTHON} imports the plan, runs the command's phases\n"
              f"      and the command (median of {COLD_RUNS} runs)\n"
              f"warm: zeus ... through the master (median of {WARM_RUNS} runs)\n"
              "wall-clock per command, stdout and stderr to pipes\n")
    finally:
        print("stopping the master (SIGTERM) ...", end=" ", flush=True)
        start = time.monotonic()
        status = master.stop()
        if status is None:
            print(f"it did not exit within {STOP_TIMEOUT:.0f} s; killed it")
        else:
            print(f"it exited with status {status} after {time.monotonic() - start:.2f} s")
    if status != 0:
        raise DemoError(f"the master exited with status {status} on SIGTERM\n{master.details()}")


def check_nothing_left(mark: str, work: Path) -> None:
    ensure_nothing_left(mark, root=work)
    print("no process left running (checked /proc/*/environ and cwd)")


def main() -> int:
    for tool in (PYTHON, ZEUS):
        if not os.access(tool, os.X_OK):
            print(f"demo: {tool} not found; run `make demo` (it installs the project)",
                  file=sys.stderr)
            return 2
    mark = uuid.uuid4().hex
    started = time.monotonic()
    failures = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="zeuspy-demo-") as work:
        try:
            demo(Path(work), mark)
        except DemoError as exc:
            failures.append(str(exc))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                check_nothing_left(mark, Path(work))
            except DemoError as exc:
                failures.append(str(exc))
    for failure in failures:
        print(f"\ndemo FAILED: {failure}", file=sys.stderr)
    if interrupted:
        print("\ndemo interrupted; the master was stopped", file=sys.stderr)
        return 130
    if failures:
        return 1
    print(f"demo OK ({time.monotonic() - started:.1f} s)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
