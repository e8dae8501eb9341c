import sys

from zeuspy.shim.runtime import main

sys.exit(main(sys.argv[1:]))
