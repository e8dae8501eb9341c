"""The one test harness of zeuspy's suites (tests/, tests/differential/, stress/).

One job per module:

- :mod:`~tests.harness.waits`: the bounds every wait uses, and the bounded waits themselves.
- :mod:`~tests.harness.processes`: what the tests know about processes: the environment mark a
  test's processes carry, whether a pid is alive, the one listing of a test's processes (by mark
  or by working directory), the one leak check every conftest uses, and killing what is left.
- :mod:`~tests.harness.project`: temp projects (zeus.json + plan, or zero-config).
- :mod:`~tests.harness.master`: a real ``zeus start`` (:class:`~tests.harness.master.Master`),
  started and stopped around a block, and waits on its phases' states.
- :mod:`~tests.harness.terminal`: ``zeus`` on a fresh PTY (pexpect): spawn, finish, exit code.
- :mod:`~tests.harness.legacy_client`: the legacy (Go) client's pipe mode, in process or in a
  process of its own; ``go_client.py`` beside it is the whole Go client emulated, as a script.
- :mod:`~tests.harness.clients`: clients of the client plan (its master, a sleeping command, job
  control in a shell, the spare a first command leaves).
- :mod:`~tests.harness.plans`: the plans test projects run.
- :mod:`~tests.harness.parallel`: which tests `make test` runs serially, and why.

Nothing here is collected as tests; the fixtures are in each suite's conftest.py.
"""
