"""The application's tests (run by ``zeus test``, or ``python -m unittest hello.tests``)."""

import asyncio
import unittest
from decimal import Decimal

from hello import VisitorLog, greet, greet_many
from hello.greetings import UnknownLanguage
from hello.service import greeting_xml


class GreetTest(unittest.TestCase):
    def test_default(self) -> None:
        self.assertEqual(greet(), "Hello, World!")

    def test_language_and_enthusiasm(self) -> None:
        self.assertEqual(greet("Ada", "fr"), "Bonjour, Ada !")
        self.assertEqual(greet("Ada", enthusiasm=Decimal("1.2")), "Hello, Ada!!!")

    def test_unknown_language_suggests(self) -> None:
        with self.assertRaises(UnknownLanguage) as caught:
            greet("Ada", "fre")
        self.assertIn("fr", caught.exception.suggestions)

    def test_many(self) -> None:
        self.assertEqual(asyncio.run(greet_many(["a", "b"])), ["Hello, a!", "Hello, b!"])


class StoreTest(unittest.TestCase):
    def test_counts_and_csv(self) -> None:
        visits = VisitorLog()
        visits.record("Ada")
        self.assertEqual(visits.record("Ada"), 2)
        self.assertEqual(visits.to_csv(), "name,count\nAda,2\n")

    def test_xml(self) -> None:
        self.assertIn('<greeting name="Ada">Hi</greeting>', greeting_xml("Ada", "Hi"))


if __name__ == "__main__":
    unittest.main()
