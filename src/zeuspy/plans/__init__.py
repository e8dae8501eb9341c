"""zeuspy's built-in plans, to use as they are (no zeus.json) or to subclass in a plan file.

- :class:`PythonPlan` (``zeuspy.plans.python``): any Python project; pytest.
- :class:`DjangoPlan` (``zeuspy.plans.django``): a Django project.

Each class's ``TREE`` is the zeus.json ``"plan"`` it implements; ``zeus init`` writes it out.
Importing this package imports no third-party module: the master reads it.
"""

from zeuspy.plans.django import DjangoPlan
from zeuspy.plans.python import PythonPlan

__all__ = ["DjangoPlan", "PythonPlan"]

#: ``module:Class`` of each built-in plan, by the name the master and ``zeus init`` use.
BUILTIN = {
    "python": "zeuspy.plans.python:PythonPlan",
    "django": "zeuspy.plans.django:DjangoPlan",
}
