"""``zeus staus``: which built-in subcommand a mistyped word meant.

Imported by the client only after a command failed, so it may take its time (it does not).
"""

from __future__ import annotations

import _socket

from zeuspy import paths

#: Shortest mistyped word that is matched as the start of a built-in (``zeus stat``, ``zeus res``).
MIN_PREFIX = 3


def distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from ``a`` to ``b``: the optimal
    string alignment distance."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def near(word: str, names: tuple[str, ...]) -> list[str]:
    """The ``names`` ``word`` is probably a typo of, nearest first: one edit away (two for words
    of seven letters or more), ignoring case, or ``word`` begins them. Empty for anything else,
    so that a plan's own command is not taken for a typo."""
    typed = word.lower()
    limit = 1 if len(typed) < 7 else 2
    found = []
    for index, name in enumerate(names):
        edits = distance(typed, name)
        if edits <= limit or (len(typed) >= MIN_PREFIX and name.startswith(typed)):
            found.append((edits, index, name))
    return [name for _, _, name in sorted(found)]


def master_listens(root: bytes) -> bool:
    """A master accepts connections on the socket of the project in ``root``."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(paths.socket_path(root))
    except OSError:
        return False
    finally:
        sock.close()
    return True
