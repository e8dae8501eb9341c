"""The plugin distributions the test phase records with their metadata held
(zeuspy.plans.pytest_warm._held): read exactly as the standard library reads them."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from zeuspy.plans import pytest_warm

METADATA = """\
Metadata-Version: 2.1
Name: heldplug
Version: 1.2.3
Summary: a plugin
Classifier: Framework :: Pytest
Classifier: Programming Language :: Python :: 3
Requires-Dist: pytest>=8
Description-Content-Type: text/markdown

# heldplug

A long description,
on two lines.
"""


def _dist(tmp_path: Path, metadata: str | None) -> importlib.metadata.PathDistribution:
    folder = tmp_path / "heldplug-1.2.3.dist-info"
    folder.mkdir()
    if metadata is not None:
        (folder / "METADATA").write_text(metadata)
    (folder / "entry_points.txt").write_text("[pytest11]\nheldplug = heldplug\n")
    return importlib.metadata.PathDistribution(folder)


def test_held_metadata_reads_as_the_standard_library_reads_it(tmp_path: Path) -> None:
    dist = _dist(tmp_path, METADATA)
    held = pytest_warm._held(dist)
    assert isinstance(held, pytest_warm._HeldDistribution)
    assert isinstance(held, importlib.metadata.PathDistribution)
    assert list(held.metadata.items()) == list(dist.metadata.items())
    assert held.metadata.get_payload() == dist.metadata.get_payload()
    assert held.metadata.get_all("Classifier") == dist.metadata.get_all("Classifier")
    assert (held.name, held.version) == (dist.name, dist.version) == ("heldplug", "1.2.3")
    assert [ep.name for ep in held.entry_points] == ["heldplug"]
    # New at each access, as the standard library's: a caller's change stays its own.
    first = held.metadata
    first.replace_header("Version", "9")
    assert held.version == "1.2.3"
    # Held: the file is not read again (the phase's metadata key notices the file changing).
    (tmp_path / "heldplug-1.2.3.dist-info" / "METADATA").write_text(
        METADATA.replace("1.2.3", "2.0"))
    assert (held.version, dist.version) == ("1.2.3", "2.0")


def test_what_is_not_held(tmp_path: Path) -> None:
    without = _dist(tmp_path, None)
    assert pytest_warm._held(without) is without

    class Other(importlib.metadata.PathDistribution):
        pass

    other = Other(tmp_path)
    assert pytest_warm._held(other) is other

