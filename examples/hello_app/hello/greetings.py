"""Greetings in a few languages, with suggestions for a misspelt language."""

from __future__ import annotations

import difflib
import string
import unicodedata
from decimal import Decimal

LANGUAGES = {
    "en": "Hello, $name!",
    "fr": "Bonjour, $name !",
    "de": "Hallo, $name!",
    "es": "¡Hola, $name!",
    "it": "Ciao, $name!",
    "pt": "Olá, $name!",
}
#: How enthusiastic a greeting is: one exclamation mark per step.
ENTHUSIASM_STEP = Decimal("0.5")


class UnknownLanguage(ValueError):
    def __init__(self, language: str) -> None:
        self.suggestions = difflib.get_close_matches(language, LANGUAGES, n=3, cutoff=0.3)
        hint = f" (did you mean {', '.join(self.suggestions)}?)" if self.suggestions else ""
        super().__init__(f"unknown language {language!r}{hint}")


def greet(name: str = "World", language: str = "en", enthusiasm: Decimal = Decimal(0)) -> str:
    """``Hello, World!`` and friends; the name is normalised (NFC, surrounding spaces dropped)."""
    try:
        template = string.Template(LANGUAGES[language])
    except KeyError:
        raise UnknownLanguage(language) from None
    text = template.substitute(name=unicodedata.normalize("NFC", name.strip()) or "World")
    extra = int(max(Decimal(0), enthusiasm) // ENTHUSIASM_STEP)
    return text + "!" * extra if text.endswith("!") else text
