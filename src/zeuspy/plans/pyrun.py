"""``zeus run``: the ``python`` command line, run inside a command process.

``zeus run script.py ARGS``, ``zeus run -m module ARGS``, ``zeus run -c CODE ARGS``,
``zeus run - ARGS`` and ``zeus run`` (a console on a terminal, else the script on stdin) give the
program what ``python`` would: ``sys.argv``, ``sys.path[0]``, ``__name__ == "__main__"``,
``__file__``, the exit status and the traceback (the command process prints it without zeuspy's
frames). The project's folders that the plan put on ``sys.path`` stay there, after ``sys.path[0]``.
"""

from __future__ import annotations

import builtins
import os
import sys
import types
from collections.abc import Callable

#: Options that change how the interpreter itself starts: the phase's interpreter is running.
STARTUP_OPTIONS = frozenset("bBdEhiIOPqRsSvVx")
#: The exit status ``python`` gives for a command-line error.
USAGE_ERROR = 2


#: Whether the interpreter gives its ``__main__`` an ``__annotations__`` dict from the start
#: (3.11 does, for every kind of program); read from the phase's own ``__main__``.
_MAIN_ANNOTATIONS = "__annotations__" in vars(sys.modules.get("__main__", types.ModuleType("_")))


def fresh_main(file: str | None) -> dict[str, object]:
    """A new ``__main__`` module in ``sys.modules``, as ``python`` makes it; its namespace."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    if _MAIN_ANNOTATIONS:
        module.__dict__["__annotations__"] = {}  # noqa: RUF063 - the key itself, as python sets it
    if file is not None:
        module.__file__ = file
        module.__cached__ = None  # type: ignore[attr-defined]
        if os.path.isfile(file):
            from importlib.machinery import SourceFileLoader

            module.__loader__ = SourceFileLoader("__main__", file)
    sys.modules["__main__"] = module
    return module.__dict__


def become_script(typed: str, file: str | None, argv: list[str]) -> None:
    """What ``python TYPED ARGV`` gives a program: ``sys.argv``, ``sys.orig_argv`` (the
    interpreter by its path) and a fresh ``__main__`` for ``file`` (the script's path)."""
    sys.argv = [typed, *argv]
    sys.orig_argv = [sys.executable, typed, *argv]
    fresh_main(file)


def _keep_source(source: str, filename: str) -> None:
    """What ``python -c`` does with its code since 3.13: the source goes into ``linecache``
    under its file name, so that tracebacks show its lines."""
    import linecache

    register = getattr(linecache, "_register_code", None)
    if sys.version_info >= (3, 13) and register is not None:
        register(filename, source, filename)


def _run_source(source: str | bytes, filename: str, file: str | None) -> None:
    code = compile(source, filename, "exec", dont_inherit=True)
    exec(code, fresh_main(file))


def _run_script(script: str) -> int | None:
    path = os.path.abspath(script)
    if os.path.isdir(path) or (os.path.isfile(path) and _is_zip(path)):
        import runpy

        sys.path.insert(0, path)
        fresh_main(None)
        # What `python DIR` or `python ZIP` itself calls: it runs DIR/__main__.py.
        runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]
        return None
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        print(f"{_program()}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}",
              file=sys.stderr)
        return USAGE_ERROR
    sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
    _run_source(source, path, path)
    return None


def _is_zip(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _program() -> str:
    return os.path.basename(sys.executable) or "python"


def _usage(text: str) -> int:
    print(f"zeus run: {text}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: list[str], console: Callable[[list[str]], int | None] | None = None) -> int | None:
    """Run ``argv`` as ``python`` would; the exit status (``None``: 0). ``console`` runs the
    interactive console when no program is given and stdin is a terminal."""
    args = list(argv)
    # What python's own command line would have been (the interpreter by its path): a program
    # that starts itself again from it must not start the phase's shim.
    sys.orig_argv = [sys.executable, *args]
    while args and args[0].startswith("-") and args[0] != "-":
        option = args.pop(0)
        if option == "--":
            break
        flag, attached = option[1:2], option[2:]
        if flag == "c" or flag == "m":
            value = attached or (args.pop(0) if args else None)
            if value is None:
                return _usage(f"argument expected for the -{flag} option")
            if flag == "c":
                sys.argv = ["-c", *args]
                sys.path.insert(0, "")
                _keep_source(value, "<string>")
                _run_source(value, "<string>", None)
                return None
            import runpy

            sys.argv = [value, *args]
            sys.path.insert(0, os.getcwd())
            fresh_main(None)
            # What `python -m` itself calls: errors read as python's, argv[0] the module's file.
            runpy._run_module_as_main(value, alter_argv=True)  # type: ignore[attr-defined]
            return None
        if flag == "u" and not attached:
            # As `python -u` builds them: no buffer at all under the text layer (a pipe reader
            # sees each write when it is made).
            from zeuspy.shim import stdio

            stdio.rebuild(unbuffered=True)
            continue
        if flag == "W":
            value = attached or (args.pop(0) if args else None)
            if value is None:
                return _usage("argument expected for the -W option")
            import warnings

            sys.warnoptions.append(value)
            warnings._processoptions([value])  # type: ignore[attr-defined]
            continue
        if flag in STARTUP_OPTIONS or flag == "X" or option.startswith("--"):
            return _usage(f"option {option} changes how the interpreter starts, and the phase's "
                          "interpreter is already running; run python directly for it")
        return _usage(f"unknown option {option}")
    if args and args[0] != "-":
        sys.argv = list(args)
        return _run_script(args[0])
    if not args and sys.stdin.isatty():
        sys.argv = [""]
        if console is not None:
            return console([])
    sys.argv = args or [""]
    sys.path.insert(0, "")
    _run_source(sys.stdin.read(), "<stdin>", "<stdin>")
    return None
