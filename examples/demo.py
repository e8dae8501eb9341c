"""`make demo`: boot the hello app once with zeuspy, then run its commands warm and cold.

1. copies examples/hello_app to a temp folder and starts a master there (`zeus start`);
2. waits (bounded) until every phase of its zeus.json reports ready;
3. runs a few commands through the real client (`zeus greet World`, ...) and, for contrast, the
   same work in a cold interpreter (a fresh python imports the plan, runs the command's phases and
   the command), timing both;
4. prints a table and the commands' output, stops the master and checks nothing is left running.

Exits 0 on success and non-zero with a message on failure. The master is stopped on every path,
^C included. Every process the demo starts carries ``ZEUSPY_DEMO_MARK=<unique id>`` in its
environment, which is how the final check finds leftovers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
PYTHON = str(VENV_BIN / "python")
ZEUS = str(VENV_BIN / "zeus")
MARK_ENV = "ZEUSPY_DEMO_MARK"

#: The commands shown, as typed after `zeus`.
COMMANDS = (("greet", "World"), ("hi",), ("about",), ("test",))
WARM_RUNS = 10  # timed runs per command through the master (after one untimed)
COLD_RUNS = 5  # timed cold runs per command (after one untimed)
BOOT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

#: The cold equivalent of `zeus COMMAND ARGS`: `python -c COLD PLAN_FILE PHASES METHOD ARGS...`.
COLD = """\
import importlib.util, sys
plan_file, phases, method, argv = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4:]
spec = importlib.util.spec_from_file_location("zeus_plan", plan_file)
module = importlib.util.module_from_spec(spec)
sys.modules["zeus_plan"] = module
spec.loader.exec_module(module)
import zeuspy
plans = [v for v in vars(module).values()
         if isinstance(v, type) and issubclass(v, zeuspy.Plan) and v is not zeuspy.Plan]
plan = [c for c in plans if not any(o is not c and issubclass(o, c) for o in plans)][0]()
for phase in phases:
    getattr(plan, phase.replace("-", "_"))()
sys.argv = [method, *argv]
sys.exit(getattr(plan, method.replace("-", "_"))(argv))
"""


class DemoError(Exception):
    """A failure the demo reports in one message (and exits non-zero)."""


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


def leftovers(mark: str, folder: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of live processes carrying ``mark`` in their environment or ``folder`` in
    their command line (a zombie is dead already and does not count)."""
    found = []
    needle = f"{MARK_ENV}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                marked = needle in f.read().split(b"\0")
        except OSError:
            continue
        if marked or folder in cmdline:
            found.append((int(entry), cmdline))
    return found


class Master:
    """`zeus start` in the project, its output in master.out, stopped by :meth:`stop`."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.output_path = root.parent / "master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([ZEUS, "start"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def details(self) -> str:
        log = self.root / ".zeus" / "master.log"
        text = log.read_text(errors="replace") if log.exists() else "(no master.log)"
        return f"--- master output ---\n{self.output}--- .zeus/master.log (end) ---\n" + "\n".join(
            text.splitlines()[-30:]
        )

    def wait_ready(self, phases: list[str], timeout: float) -> float:
        start = time.monotonic()
        while True:
            output = self.output
            if all(f" {name}: ready" in output for name in phases):
                return time.monotonic() - start
            crashed = [name for name in phases if f" {name}: crashed" in output]
            if crashed:
                raise DemoError(f"phase {', '.join(crashed)} crashed\n{self.details()}")
            if self.proc.poll() is not None:
                raise DemoError(f"the master exited early (status {self.proc.returncode})\n"
                                f"{self.details()}")
            if time.monotonic() - start > timeout:
                raise DemoError(f"phases not ready after {timeout:.0f} s\n{self.details()}")
            time.sleep(0.02)

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status (None if it had to be killed)."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                return None
        finally:
            self._out.close()


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
    env = dict(os.environ, **{MARK_ENV: mark})
    env.pop("ZEUSSOCK", None)
    version = subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"zeuspy demo: the hello app, copied to {project}")
    print(f"python: {PYTHON} ({version})")
    print(f"$ zeus start   ({ZEUS})")

    master = Master(project, env)
    rows = []
    try:
        took = master.wait_ready(phases, BOOT_TIMEOUT)
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


def check_nothing_left(mark: str, folder: str) -> None:
    deadline = time.monotonic() + 3.0
    while True:
        left = leftovers(mark, folder)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        listing = "\n".join(f"  pid {pid}: {cmdline}" for pid, cmdline in left)
        raise DemoError(f"processes left running after the master stopped (now killed):\n{listing}")
    print("no process left running (checked /proc/*/environ and cmdline)")


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
                check_nothing_left(mark, work)
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
