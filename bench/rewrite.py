"""Rewritten test modules held by the phase (`make bench` runs it after bench/suites.py): one
attrs test file run with PYTHONDONTWRITEBYTECODE=1, where pytest keeps no ``__pycache__`` file
and so parses, rewrites and compiles the test module and its conftest files in every run
(zeuspy/plans/pytest_rewrite.py, docs/plans.md).

A benchmark, not a test: it prints a table, and fails only when something does not work (a run's
counts or exit status differ from plain pytest's, a master does not boot, a phase restarts, a
process is left behind).

The project is bench/suites.py's attrs sdist. The command line is SELECTION (``tests/test_make.py``,
about 190 ms to rewrite, a few tests selected so that the start-up is what is measured). Each
timed round runs, in this order:
  pytest                the venv's pytest script (it rewrites every module, always)
  zeus, after an edit   ``zeus pytest`` right after a line was appended to the test file: the
                        command rewrites it, as pytest does, and teaches its phase
  zeus, held            ``zeus pytest`` SETTLE seconds later: the phase has rewritten the new
                        version, and the command takes its code
Wall clock from spawning the process to its exit, stdout and stderr read from pipes; medians and
p90 (nearest rank) of ROUNDS rounds after WARMUP discarded ones; speed-up = plain pytest's median
/ this median.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import heavy  # bench/ is on sys.path: run as a script
import suites
from projects import BenchError, bench_env, run_guarded, table

SELECTION = ["tests/test_make.py", "-q", "-k", "test_no_modifications or TestTransformAttrs"]
EDITED = "tests/test_make.py"
WARMUP = 2
ROUNDS = 9
#: How long the phase gets to rewrite the edited file before the "held" run (it takes ~0.2 s).
SETTLE = 1.5
COLUMNS = ("pytest", "zeus, after an edit", "zeus, held")


def bench(work: Path, mark: str) -> None:
    env = bench_env(mark)
    env.pop(heavy.GC_FREEZE_ENV, None)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    print("zeuspy rewrite benchmark (PYTHONDONTWRITEBYTECODE=1)")
    print(f"load:     {heavy.load()} (1, 5, 15 min)")
    suite = suites.write_attrs(work, env)
    root = suite.root
    edited = root / EDITED
    print(f"project:  {root}\ncommand:  {' '.join(SELECTION)}", flush=True)
    master = heavy.HeavyMaster(root, env)
    samples: dict[str, list[float]] = {column: [] for column in COLUMNS}
    try:
        before = master.pids()
        reference: suites.Run | None = None
        for index in range(WARMUP + ROUNDS):
            results: dict[str, suites.Run] = {}
            results["pytest"] = suites.run([suites.PYTEST, *SELECTION], root, env)
            with edited.open("a") as text:
                text.write(f"# zeuspy bench edit {index}\n")
            results["zeus, after an edit"] = suites.run([suites.ZEUS, "pytest", *SELECTION],
                                                        root, env)
            time.sleep(SETTLE)
            results["zeus, held"] = suites.run([suites.ZEUS, "pytest", *SELECTION], root, env)
            reference = reference or results["pytest"]
            for column, result in results.items():
                if (result.status, result.counts) != (reference.status, reference.counts):
                    raise BenchError(f"{column}: exit {result.status}, {result.counts}; plain "
                                     f"pytest: exit {reference.status}, {reference.counts}\n"
                                     f"{result.output[-2000:]}")
            if master.pids() != before:
                raise BenchError(f"a phase restarted during round {index + 1}\n"
                                 f"{master.details()}")
            line = "  ".join(f"{c} {results[c].seconds * 1000:.0f} ms" for c in COLUMNS)
            print(f"  {'warm-up' if index < WARMUP else 'round'} {index + 1}: {line}", flush=True)
            if index >= WARMUP:
                for column, result in results.items():
                    samples[column].append(result.seconds)
    finally:
        master.stop()
    plain = statistics.median(samples["pytest"])
    rows = []
    for column in COLUMNS:
        median = statistics.median(samples[column])
        rows.append((column, f"{median * 1000:.1f}", f"{heavy.p90(samples[column]) * 1000:.1f}",
                     f"{plain / median:.2f}x"))
    assert reference is not None
    table(f"attrs {' '.join(SELECTION)}, PYTHONDONTWRITEBYTECODE=1 ({ROUNDS} rounds; "
          f"{suites.describe(reference.counts)})",
          ("runner", "median ms", "p90 ms", "speed-up"), rows)
    print(f"\nload at the end: {heavy.load()}")


def main() -> int:
    for tool in (suites.PYTHON, suites.PYTEST, suites.ZEUS):
        if not Path(tool).exists():
            print(f"rewrite bench: {tool} not found; run `make bench`", file=sys.stderr)
            return 2
    return run_guarded("rewrite bench", "zeuspy-rewrite-bench-", "the project", bench)


if __name__ == "__main__":
    sys.exit(main())
