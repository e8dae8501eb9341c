"""hello: a small greeting service, the example application of zeuspy.

Importing it is deliberately as slow as a real application's start-up: its modules pull in a web
server, an asyncio front end, a SQLite store and XML/CSV/e-mail formatting from the standard library
(roughly 100-300 ms on a laptop). That is the cost zeuspy pays once, in the ``app`` phase.
"""

from hello.greetings import LANGUAGES, greet
from hello.service import greet_many
from hello.store import VisitorLog

__version__ = "1.0.0"

__all__ = ["LANGUAGES", "VisitorLog", "__version__", "greet", "greet_many"]
