"""The ``zeus`` command line: built-in subcommands (one module each in this package, listed in
:data:`SUBCOMMANDS`), or a command run through the master.

Imported on every client call: parses by hand (argparse costs milliseconds) and imports the
master's code only for the subcommands that need it.
"""

import posix
import sys

from zeuspy import __version__

#: The built-in subcommands: the word, the module under zeuspy.cli that runs it (its
#: ``main(word, args, config) -> int``), its options in the usage, and what it does. The usage,
#: `zeus help`, the typo hints and the names a plan may not give a command or alias
#: (config.RESERVED_NAMES) all come from here.
SUBCOMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ("start", "start", "[--detach]", "start the master (boots the plan's phases)"),
    ("init", "init", "", "write zeus.json and zeus_plan.py for this project"),
    ("commands", "listing", "", "list the plan's commands and aliases"),
    ("status", "status", "[--json|--log]", "show the running master's phases"),
    ("restart", "control", "", "reboot every phase of the running master"),
    ("stop", "control", "", "stop the running master"),
)
#: The built-in words, and with `version` and `help` (answered here) every word zeus keeps.
BUILTINS = tuple(word for word, *_ in SUBCOMMANDS)
RESERVED = (*BUILTINS, "version", "help")
_MODULES = {word: module for word, module, *_ in SUBCOMMANDS}

USAGE = "".join((
    "usage: zeus [-t|-T] COMMAND [ARGS...]   run COMMAND of the plan in a preloaded process\n",
    *(f"       zeus {f'{word} {options}'.strip():<28} {summary}\n"
      for word, _, options, summary in SUBCOMMANDS),
    """\
       zeus version | help

`zeus SUBCOMMAND --help` explains each one.

options for COMMAND:
  -t, --tty      give the command a terminal even when output is redirected
  -T, --no-tty   never give the command a terminal
  --config PATH  the zeus.json to use (default: the nearest one from here upwards)
""",
))
#: The master's exit status for a word that is no command or alias of the plan.
EXIT_UNKNOWN_COMMAND = 127


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _full_environment() -> None:
    """The launcher starts Python without `site`; the master needs the whole environment."""
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    tty: bool | None = None
    config: str | None = None
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-t", "--tty"):
            tty = True
        elif option in ("-T", "--no-tty"):
            tty = False
        elif option in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        elif option in ("-V", "--version"):
            sys.stdout.write(f"zeuspy {__version__}\n")
            return 0
        elif option == "--config" and args:
            config = args.pop(0)
        elif option.startswith("--config="):
            config = option.partition("=")[2]
        elif option == "--":
            break
        else:
            hint = _did_you_mean(option.lstrip("-")) if option.startswith("--") else None
            _err(f"zeus: unknown option {option}" + (f". {hint}" if hint else f"\n{USAGE}"))
            return 2
    if not args:
        _err(USAGE)
        return 2
    word, rest = args[0], args[1:]
    if word in RESERVED:
        return _builtin(word, rest, config)
    from zeuspy import paths
    from zeuspy.client.run import run

    if config is not None:
        path = config.encode(sys.getfilesystemencoding(), "surrogateescape")
        if not path.startswith(b"/"):
            path = posix.getcwdb() + b"/" + path
        root = path.rpartition(b"/")[0] or b"/"
    else:
        root = paths.master_root()
    code = run(word, rest, tty, root)
    # Only after a failure: a command that ran pays nothing for the hint.
    if code in (EXIT_UNKNOWN_COMMAND, 1):
        _hint_builtin(word, code, root)
    return code


def _did_you_mean(word: str) -> str | None:
    """The line naming the built-in subcommands ``word`` is probably a typo of, or None."""
    from zeuspy import suggest

    close = suggest.near(word, RESERVED)
    if not close:
        return None
    what = "a zeus subcommand" if len(close) == 1 else "zeus subcommands"
    return f"Did you mean {' or '.join(close)}? ({what})"


def _hint_builtin(word: str, code: int, root: bytes) -> None:
    """``zeus staus``: the master knows only the plan's commands (its answer: status 127), so
    name the built-in the word is a typo of. Status 1 is also a command's own failure: hint then
    only when no master listens (the client has said it cannot connect). A plan's command named
    like a typo of a built-in that itself exits 127 gets the hint too: rare, and only a hint."""
    from zeuspy import suggest

    line = _did_you_mean(word)
    if line is not None and (code == EXIT_UNKNOWN_COMMAND or not suggest.master_listens(root)):
        _err(line)


def _builtin(word: str, rest: list[str], config: str | None) -> int:
    if word == "version":
        sys.stdout.write(f"zeuspy {__version__}\n")
        return 0
    if word == "help":
        sys.stdout.write(USAGE)
        return 0
    _full_environment()
    import importlib

    from zeuspy.errors import ZeusError

    module = importlib.import_module(f"zeuspy.cli.{_MODULES[word]}")
    try:
        return int(module.main(word, rest, config))
    except ZeusError as exc:
        message = exc.message if exc.message.startswith("zeus") else f"zeus: {exc.message}"
        _err(message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    posix._exit(main())
