"""The zeuspy plan of the hello app: one method per node of zeus.json.

Phases (``boot`` -> ``app`` -> ``test_environment``) run once, in the master's process tree, and
stay warm; each command is forked from its phase for one ``zeus <command>`` call and gets the
client's terminal, arguments, working directory and environment.
"""

import os
import sys

import zeuspy

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # `import hello` wherever `zeus start` was run from


class HelloPlan(zeuspy.Plan):
    # -- phases ---------------------------------------------------------------------------------
    def boot(self):
        """What every phase needs: settings and logging (no application code yet)."""
        import logging

        os.environ.setdefault("HELLO_SETTINGS", "development")
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def app(self):
        """The expensive part: import the application."""
        import hello  # noqa: F401

    def test_environment(self):
        """Test tooling and the test modules, loaded once for every `zeus test`."""
        import unittest  # noqa: F401

        import hello.tests  # noqa: F401

    # -- commands -------------------------------------------------------------------------------
    def greet(self, argv):
        """zeus greet [NAME ...] [--lang LANG] [--excited N]  (alias: zeus hi)"""
        import argparse
        from decimal import Decimal

        from hello import VisitorLog, greet
        from hello.greetings import UnknownLanguage

        parser = argparse.ArgumentParser(prog="zeus greet", description="Greet people.")
        parser.add_argument("names", nargs="*", default=["World"])
        parser.add_argument("--lang", default="en")
        parser.add_argument("--excited", type=Decimal, default=Decimal(0))
        options = parser.parse_args(argv)
        visits = VisitorLog()
        for name in options.names:
            try:
                print(greet(name, options.lang, options.excited))
            except UnknownLanguage as exc:
                print(f"zeus greet: {exc}", file=sys.stderr)
                return 2
            visits.record(name)
        return 0

    def about(self, argv):
        """zeus about: the app's version (`zeus version` is zeuspy's own built-in)."""
        import hello

        print(f"hello {hello.__version__} (Python {sys.version.split()[0]}, zeuspy "
              f"{zeuspy.__version__})")

    def test(self, argv):
        """zeus test [unittest options, e.g. -v, -k PATTERN]: non-zero when a test fails."""
        import unittest

        program = unittest.main(module="hello.tests", argv=["zeus test", *argv], exit=False)
        return 0 if program.result.wasSuccessful() else 1
