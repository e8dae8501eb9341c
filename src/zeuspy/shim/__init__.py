"""The shim: the code inside phases and commands (``python -m zeuspy.shim <plan file>``).

runtime.py registers phases, runs their actions and forks on request; command.py is the runner and
the command process; tracking.py finds the files a phase loaded; process.py holds the fork hygiene.
"""
