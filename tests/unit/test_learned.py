"""shim/learned.py's bounds and filters: what a command sends, what a phase accepts (the end-to-end
behaviour is in tests/e2e/test_learned_imports.py)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from zeuspy.shim import learned


@pytest.fixture
def learner(monkeypatch: pytest.MonkeyPatch) -> Iterator[learned.Learner]:
    monkeypatch.delenv(learned.ENABLE_ENV, raising=False)  # on by default
    made = learned.Learner()
    yield made
    made.close()
    learned.close_inherited()


def test_chunks_hold_whole_names_within_the_limits() -> None:
    names = [f"package_{i}.module_{i}" for i in range(20_000)]
    chunks = learned.chunks(names)
    assert all(len(chunk) <= learned.DATAGRAM_LIMIT for chunk in chunks)
    assert sum(len(chunk) + 1 for chunk in chunks) <= learned.SEND_LIMIT + len(chunks)
    sent = [name for chunk in chunks for name in chunk.decode().split("\n")]
    assert sent == names[:len(sent)] and len(sent) > 1000  # whole names, in order, a prefix


def test_chunks_leave_out_overlong_names() -> None:
    assert learned.chunks(["a" * 500, "ok"]) == [b"ok"]
    assert learned.chunks([]) == []


@pytest.mark.parametrize("name", ["", "os; import x", "1abc", "a..b", ".a", "a.", "a b",
                                  "a" * 300, "caf\u00e9", "__import__('os')"])
def test_a_phase_refuses_what_is_not_a_module_name(learner: learned.Learner, name: str) -> None:
    assert learner.import_names([name]) == []
    assert name not in sys.modules


def test_a_phase_imports_a_name_once(learner: learned.Learner) -> None:
    name = "zeuspy_no_such_module_for_learning"
    assert learner.import_names([name, name]) == []
    assert learner.tried == {name}  # failed once, never tried again


def test_a_phase_tries_a_bounded_number_of_names(learner: learned.Learner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(learned, "NAMES_LIMIT", 3)
    learner.import_names([f"zeuspy_missing_{i}" for i in range(10)])
    assert len(learner.tried) == 3


def test_datagrams_are_read_and_imported(learner: learned.Learner,
                                         no_fd_leak: object) -> None:
    assert learner.fileno() is not None and learned._sink is not None
    learned._sink.send(b"colorsys\nzeuspy_missing_x")
    learned._sink.send(b"\xff\xfe\nnot a name")
    sys.modules.pop("colorsys", None)
    assert learner.absorb() == ["colorsys"]
    assert learner.absorb() == []  # nothing waiting: never blocks


def test_off_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(learned.ENABLE_ENV, "0")
    off = learned.Learner()
    assert off.fileno() is None and learned._sink is None
    assert off.import_names(["colorsys"]) == []


def test_what_counts_as_a_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(learned, "_library_dirs", ("/usr/lib/python3.11/",))

    def module(path: str | None, loader: object = None) -> types.ModuleType:
        made = types.ModuleType("m")
        if path is not None:
            made.__file__ = path
        made.__loader__ = loader  # type: ignore[assignment]
        return made

    class AssertionRewritingHook:
        pass

    assert learned.is_library("sys", module(None))  # built in
    assert learned.is_library("json", module("/usr/lib/python3.11/json/__init__.py"))
    assert learned.is_library("np", module("/p/.venv/lib/python3.11/site-packages/np/__init__.py"))
    assert learned.is_library("six", module("/usr/lib/python3/dist-packages/six.py"))
    assert not learned.is_library("mypkg", module("/home/me/proj/mypkg/__init__.py"))
    assert not learned.is_library("ns", module(None))  # a namespace package: no file
    assert not learned.is_library("plugin", module("/v/site-packages/plugin.py",
                                                   AssertionRewritingHook()))


# -- lessons --------------------------------------------------------------------------------------
@pytest.fixture
def lessons(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A handler for the kind "probe": records each payload; "boom" raises, "same" is no change."""
    got: list[str] = []

    def handle(payload: str) -> bool:
        if payload == "boom":
            raise RuntimeError(payload)
        got.append(payload)
        return payload != "same"

    monkeypatch.setattr(learned, "_handlers", {})
    learned.on_lesson("probe", handle)
    return got


def test_lessons_are_queued_without_repeats_and_handled_one_per_step(
        learner: learned.Learner, lessons: list[str], no_fd_leak: object) -> None:
    assert learned._sink is not None
    learned._sink.send(b"colorsys\n@probe /a b\n@probe /a b\n@other x\n@probe boom")
    learned._sink.send("@probe same\n@probe caf\u00e9 \udcff".encode("utf-8", "surrogateescape"))
    sys.modules.pop("colorsys", None)
    assert learner.absorb() == ["colorsys"]  # names are imported at once, lessons queued
    assert lessons == [] and learner.busy()
    assert list(learner.pending) == [("probe", "/a b"), ("probe", "boom"), ("probe", "same"),
                                     ("probe", "caf\u00e9 \udcff")]  # no unknown kind
    assert learner.step() is True and lessons == ["/a b"]
    assert learner.step() is False  # a handler that raises changes nothing, and is survived
    assert learner.step() is False and lessons == ["/a b", "same"]
    assert learner.step() is True and not learner.busy()
    assert learner.step() is False


def test_pending_lessons_are_bounded(learner: learned.Learner, lessons: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(learned, "PENDING_LIMIT", 3)
    for i in range(10):
        learner._queue(f"@probe {i}")
    learner._queue("@probe " + "x" * learned.LESSON_LIMIT)
    assert [payload for _, payload in learner.pending] == ["0", "1", "2"]


def test_a_command_sends_its_lessons_after_its_imports(learner: learned.Learner,
                                                       lessons: list[str]) -> None:
    learned.remember_inherited()
    learned.teach("probe", "/one")
    learned.teach("probe", "/one")  # once
    learned.teach("probe", "two\nlines")  # not one line: dropped
    learned.teach("probe", "/" + "x" * learned.LESSON_LIMIT)  # too long: dropped when sent
    learned.send_new_imports()
    learner.absorb()
    assert list(learner.pending) == [("probe", "/one")]
    learned.remember_inherited()  # a new command starts with no lessons
    assert learned._lessons == {}


def test_a_lesson_kind_is_a_plain_word() -> None:
    with pytest.raises(ValueError):
        learned.on_lesson("bad kind", lambda payload: False)


def test_chunks_keep_lessons_whole() -> None:
    lines = ["json", "@probe " + "p" * 1500, "@probe " + "q" * 1500, "@probe \udcff"]
    chunks = learned.chunks(lines)
    assert [chunk.count(b"\n") + 1 for chunk in chunks] == [2, 2]
    assert chunks[1].endswith(b"\xff")
