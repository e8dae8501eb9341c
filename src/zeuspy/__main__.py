"""``python -m zeuspy``: the same as the ``zeus`` command."""

from zeuspy.cli import main

raise SystemExit(main())
