"""The ``zeus`` command line: built-in subcommands, or a command run through the master.

Imported on every client call: parses by hand (argparse costs milliseconds) and imports the
master's code only for the subcommands that need it.
"""

import posix
import sys

from zeuspy import __version__

USAGE = """\
usage: zeus [-t|-T] COMMAND [ARGS...]   run COMMAND of the plan in a preloaded process
       zeus start [--detach]             start the master (boots the plan's phases)
       zeus init                         write zeus.json and zeus_plan.py for this project
       zeus commands                     list the plan's commands and aliases
       zeus status [--json|--log]        show the running master's phases
       zeus restart                      reboot every phase of the running master
       zeus stop                         stop the running master
       zeus version | help

`zeus SUBCOMMAND --help` explains each one.

options for COMMAND:
  -t, --tty      give the command a terminal even when output is redirected
  -T, --no-tty   never give the command a terminal
  --config PATH  the zeus.json to use (default: the nearest one from here upwards)
"""
#: The built-in words (zeuspy.builtins.BUILTINS maps them to modules; a test keeps both equal).
BUILTINS = ("start", "init", "commands", "status", "restart", "stop")
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
    if word in BUILTINS or word in ("version", "help"):
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

    close = suggest.near(word, (*BUILTINS, "version", "help"))
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
    from zeuspy import builtins

    try:
        return builtins.run(word, rest, config)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    posix._exit(main())
