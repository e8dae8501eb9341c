"""The shim: the code inside phases and commands (``python -m zeuspy.shim <plan file>``).

runtime.py is the phase loop (register, act, report, fork on request, reap); spares.py its
bookkeeping of spares; spare.py the spare command and guard.py its guard; runner.py the runner;
command.py the command process; tracking.py finds the files a phase loaded; process.py and
hygiene.py hold the fork hygiene.
"""
