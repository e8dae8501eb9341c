"""``zeus shell``: IPython when it is installed, else Python's own interactive console, with line
editing and history as ``python`` gives them (``sys.__interactivehook__``: readline, completion,
``~/.python_history``) and ``PYTHONSTARTUP`` run first."""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys
import types

#: Set to 1 to get the standard console even when IPython is installed.
NO_IPYTHON_ENV = "ZEUSPY_NO_IPYTHON"


def banner() -> str:
    """What ``python`` prints when its console starts."""
    return (f"Python {sys.version} on {sys.platform}\n"
            'Type "help", "copyright", "credits" or "license" for more information.')


def interact(argv: list[str], namespace: dict[str, object] | None = None) -> int | None:
    """Run a console on the command's terminal until EOF or ``exit()``; ``argv`` goes to IPython
    (the standard console takes none)."""
    if not os.environ.get(NO_IPYTHON_ENV) and importlib.util.find_spec("IPython") is not None:
        import IPython

        IPython.start_ipython(argv=argv, user_ns=namespace)
        return None
    if argv:
        print(f"zeus shell: the standard console takes no arguments (got {argv[0]!r}); "
              "install IPython for its options", file=sys.stderr)
        return 2
    import code

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    if namespace:
        main.__dict__.update(namespace)
    sys.modules["__main__"] = main
    sys.argv = [""]
    hook = getattr(sys, "__interactivehook__", None)
    if hook is not None:
        try:
            hook()
        except Exception as exc:  # a broken readline or history file must not stop the console
            print(f"zeus shell: line editing unavailable: {exc}", file=sys.stderr)
    startup = os.environ.get("PYTHONSTARTUP")
    if startup and os.path.isfile(startup):
        with open(startup, "rb") as handle:
            exec(compile(handle.read(), startup, "exec"), main.__dict__)
    code.interact(banner=banner(), local=main.__dict__, exitmsg="")
    return None
