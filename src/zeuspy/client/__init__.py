"""The client: ``zeus <command> [args]``. Standard library only, and as little of it as it can
(``posix``, ``_socket``, ``select``, ``termios``, ``fcntl``, ``_signal``): its start-up is the floor
of every command's latency."""
