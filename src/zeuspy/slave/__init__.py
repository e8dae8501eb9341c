"""``python -m zeuspy.slave``: the old name of the shim (zeuspy.shim), kept for zeus.json files and
legacy plans that name it."""
