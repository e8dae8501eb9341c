"""Entry point of the root phase: ``python -m zeuspy.slave <plan file>`` (started by the master)."""

import sys

from zeuspy.slave.runtime import main

sys.exit(main(sys.argv[1:]))
