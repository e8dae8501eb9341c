"""The client: ``zeus <command> [args]``. Standard library only, and as little of it as it can
(``posix``, ``_socket``, ``_signal``; ``termios`` on a terminal; ``select``, and ``fcntl`` on a
terminal, only once the request is sent): its start-up is the floor of every command's latency."""
