"""Entry point of the root phase: ``python -m zeuspy.shim <plan file>`` (started by the master)."""

import sys

from zeuspy.shim.runtime import main

sys.exit(main(sys.argv[1:]))
