"""zeuspy: Zeus, the application preloader, for Python.

This module is imported by the client on every command, so it stays tiny: the plan API is loaded
lazily on first use (``zeuspy.Plan``, ``zeuspy.track``, ``zeuspy.after_fork``).
"""

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zeuspy.plan import Plan, after_fork, track

__all__ = ["Plan", "__version__", "after_fork", "track"]


def __getattr__(name: str) -> object:
    if name in ("Plan", "track", "after_fork"):
        from zeuspy import plan

        return getattr(plan, name)
    raise AttributeError(f"module 'zeuspy' has no attribute {name!r}")
