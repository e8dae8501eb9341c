"""The plan file `zeus init` writes: a subclass of a built-in plan, to edit (docs/plans.md)."""

PLAN_FILE = '''\
"""zeuspy plan for this project, written by `zeus init`: edit freely (docs/plans.md).

Each node of zeus.json is a method: a phase takes no arguments, a command takes its argument list
and returns an exit status (or None for 0). @BASE@ implements the ones zeus.json lists now;
override any of them here, or add a node to zeus.json and its method here.
"""

from zeuspy.plans import @BASE@


class Plan(@BASE@):
    pass
'''


def plan_file(base: str) -> str:
    """The plan file for a project whose plan extends the built-in class ``base``."""
    return PLAN_FILE.replace("@BASE@", base)
