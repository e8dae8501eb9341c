"""The plans the tests run: the default one every test project starts with, and the client
plan whose commands exercise a client's streams, signals and terminal (client, spare tests)."""

from __future__ import annotations

from typing import Any

#: The plan a test project gets unless the test writes its own (commands named unlike any
#: built-in such as ``status``).
DEFAULT_PLAN = """
import os, sys, time
import zeuspy

class TestPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        import decimal

    def hello(self, argv):
        print("hello", *argv)
        return 0

    def exitwith(self, argv):
        return int(argv[0])

    def echoargs(self, argv):
        for a in argv:
            print(repr(a))

    def both(self, argv):
        print("out")
        print("err", file=sys.stderr)

    def cat(self, argv):
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        print("EOF after", len(data), file=sys.stderr)

    def sleep(self, argv):
        print("sleeping", os.getpid(), flush=True)
        time.sleep(float(argv[0]) if argv else 30)

    def make_file(self, argv):
        open(argv[0], "w").close()
"""

DEFAULT_TREE: dict[str, Any] = {
    "boot": {"app": {"hello": ["hi"], "exitwith": None, "echoargs": None, "both": None,
                     "cat": None, "sleep": None, "make_file": None}}
}


#: What the `colors` command writes: escape sequences, a bell, an OSC title, UTF-8, DEL, backspace.
COLOR_BYTES = (b"\x1b[1;31mRED\x1b[0m|\x1b]0;a title\x07|\xe2\x9c\x93 \xc3\xa9|\x08\x7f\x1b[2J"
               b"\x1b[?25l\x1b[?25h|END")
#: What the `big` command writes (1 MB and a marker), then it returns at once.
BIG_BYTES = b"0123456789abcdef" * 65536 + b"<END>"

CLIENT_PLAN = r"""
import json, os, signal, sys, time
import zeuspy

COLOR_BYTES = %(colors)r
BIG_BYTES = b"0123456789abcdef" * 65536 + b"<END>"


def _ready(what="ready"):
    print(what, os.getpid(), flush=True)


class ClientPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        pass

    def hello(self, argv):
        print("hello", *argv)

    def exit_with(self, argv):
        return int(argv[0])

    def say_exit(self, argv):
        print("n=" + argv[0])
        print("e=" + argv[0], file=sys.stderr)
        return int(argv[0])

    def exit_code(self, argv):
        print("before exit", flush=True)
        sys.exit(int(argv[0]))

    def exit_text(self, argv):
        sys.exit("fatal: " + argv[0])

    def exit_none(self, argv):
        print("bye")
        sys.exit(None)

    def returns_none(self, argv):
        print("nothing to return")

    def boom(self, argv):
        def inner():
            raise ValueError("kaboom " + argv[0])
        inner()

    def suicide(self, argv):
        print("dying", flush=True)
        os.kill(os.getpid(), int(argv[0]))
        time.sleep(5)
        return 99

    def args_json(self, argv):
        print(json.dumps({"argv": argv, "sys_argv": sys.argv}))

    def both(self, argv):
        for i in range(50):
            print("out", i)
            print("err", i, file=sys.stderr)

    def cat(self, argv):
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        print("EOF after", len(data), file=sys.stderr)

    def lines(self, argv):
        got = []
        for line in sys.stdin:
            got.append(line.rstrip("\r\n"))
        print("LINES", json.dumps(got))
        return len(got)

    def ttys(self, argv):
        print("TTYS", json.dumps([os.isatty(0), os.isatty(1), os.isatty(2)]))

    def winsize(self, argv):
        size = os.get_terminal_size(1)
        print("SIZE=%%dx%%d" %% (size.columns, size.lines))

    def winch(self, argv):
        got = []

        def handler(signum, frame):
            size = os.get_terminal_size(1)
            got.append(size)
            os.write(1, b"WINCH=%%dx%%d\n" %% (size.columns, size.lines))

        signal.signal(signal.SIGWINCH, handler)
        _ready()
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0 if got else 3

    def ask(self, argv):
        name = input("name? ")
        print("got", repr(name))
        return 0

    def colors(self, argv):
        sys.stdout.buffer.write(COLOR_BYTES)
        sys.stdout.flush()

    def interrupt(self, argv):
        _ready()
        try:
            time.sleep(10)
        except KeyboardInterrupt:
            print("caught ^C", flush=True)
            return 42
        return 0

    def sleep(self, argv):
        _ready("sleeping")
        time.sleep(float(argv[0]) if argv else 30)

    def stubborn(self, argv):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _ready("sleeping")
        time.sleep(30)

    def term(self, argv):
        def handler(signum, frame):
            os.write(1, b"got TERM\n")  # not print: it may interrupt a print (reentrant call)
            raise SystemExit(7)

        signal.signal(signal.SIGTERM, handler)
        _ready()
        time.sleep(10)
        return 0

    def resume(self, argv):
        _ready("pid")
        line = input()
        print("resumed", line, flush=True)
        return 5

    def big(self, argv):
        sys.stdout.buffer.write(BIG_BYTES)

    def session(self, argv):
        info = {"pid": os.getpid(), "sid": os.getsid(0), "pgrp": os.getpgrp()}
        try:
            info["tcpgrp"] = os.tcgetpgrp(0)
        except OSError:
            info["tcpgrp"] = None
        try:
            os.close(os.open("/dev/tty", os.O_RDWR))
            info["devtty"] = True
        except OSError:
            info["devtty"] = False
        print("SESSION", json.dumps(info), flush=True)
"""

COMMANDS = ("hello", "exit_with", "say_exit", "exit_code", "exit_text", "exit_none", "returns_none",
            "boom", "suicide", "args_json", "both", "cat", "lines", "ttys", "winsize", "winch",
            "ask", "colors", "interrupt", "sleep", "stubborn", "term", "resume", "big", "session")
CLIENT_TREE: dict[str, Any] = {
    "boot": {"app": {name: (["hi"] if name == "hello" else None) for name in COMMANDS}}
}


def plan_source() -> str:
    return CLIENT_PLAN % {"colors": COLOR_BYTES}
