"""The client's world: its encoding on both sides, the header field, the shim's use of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeuspy.client import run as client
from zeuspy.protocol import messages as m
from zeuspy.protocol.wire import ProtocolError
from zeuspy.shim import world

keys = st.binary(min_size=1, max_size=8).filter(lambda k: b"=" not in k and b"\0" not in k)
values = st.binary(max_size=20).filter(lambda v: b"\0" not in v)


@settings(database=None, derandomize=True, max_examples=100)
@given(st.binary(max_size=30).filter(lambda c: b"\0" not in c), st.dictionaries(keys, values))
def test_world_round_trip(tail: bytes, environ: dict[bytes, bytes]) -> None:
    cwd = b"/" + tail
    assert m.decode_world(m.encode_world(cwd, environ)) == (cwd, environ, frozenset(), None)


@settings(database=None, derandomize=True, max_examples=50)
@given(st.sets(st.sampled_from(sorted(m.IGNORABLE))), st.dictionaries(keys, values))
def test_ignored_signals_round_trip(ignored: set[int], environ: dict[bytes, bytes]) -> None:
    assert m.decode_world(m.encode_world(b"/w", environ, ignored)) == (b"/w", environ,
                                                                       frozenset(ignored), None)


def test_ignored_signals_outside_the_set_are_dropped_and_garbage_refused() -> None:
    import signal

    def world(entry: bytes) -> str:
        return (b"/w\0A=1\0" + entry).hex()

    assert m.decode_world(world(b"=ignored:1,9,19,2,64")).ignored == {signal.SIGHUP,
                                                                      signal.SIGINT}
    assert m.decode_world(world(b"=ignored:")).ignored == frozenset()
    assert m.decode_world(world(b"=other:3")) == (b"/w", {b"A": b"1"}, frozenset(), None)
    for bad in (b"=ignored:x", b"=ignored:1,,2", b"=ignored:" + b"9" * 40):
        with pytest.raises(ProtocolError):
            m.decode_world(world(bad))


@pytest.mark.parametrize("mask", [0, 0o22, 0o77, 0o777])
def test_umask_round_trip(mask: int) -> None:
    assert m.decode_world(m.encode_world(b"/w", {}, (), mask)).umask == mask


@pytest.mark.parametrize("bad", [b"=umask:", b"=umask:8", b"=umask:1234", b"=umask:-1",
                                 b"=umask: 22"])
def test_bad_umasks_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.decode_world((b"/w\0" + bad).hex())


def test_client_offer_matches_the_protocol_module() -> None:
    offer = client.extension_offer()
    assert offer.endswith(b"\0")
    fields = m.parse_extension(offer[:-1].decode()).fields
    assert fields["zeuspy"] == m.EXTENSION_VERSION
    cwd, environ, ignored, umask = m.decode_world(fields["world"])
    mask = os.umask(0)
    os.umask(mask)
    assert umask == mask
    assert cwd == os.getcwdb()
    assert environ == dict(os.environb)
    assert ignored == client.IGNORED
    assert client.MAX_WORLD == m.MAX_WORLD
    assert frozenset(client.IGNORABLE) == m.IGNORABLE


def test_client_offer_carries_the_signals_it_was_started_with_ignored() -> None:
    """A client started with SIGHUP and SIGINT ignored (``trap '' HUP INT``) lists them."""
    code = ("import signal, sys; from zeuspy.client import run; "
            "sys.stdout.buffer.write(run.extension_offer())")
    out = subprocess.run(["sh", "-c", f"trap '' HUP INT; exec {sys.executable} -c '{code}'"],
                         capture_output=True, check=True, timeout=30).stdout
    fields = m.parse_extension(out[:-1].decode()).fields
    assert m.decode_world(fields["world"]).ignored == {signal.SIGHUP, signal.SIGINT}


def test_client_leaves_out_a_huge_world(monkeypatch: pytest.MonkeyPatch) -> None:
    import posix

    monkeypatch.setitem(posix.environ, b"ZEUSPY_HUGE", b"x" * m.MAX_WORLD)
    assert client.extension_offer() == client.EXTENSION_OFFER


@pytest.mark.parametrize("text", ["zz", "2f61", "", "6162"])
def test_bad_worlds_are_protocol_errors(text: str) -> None:
    # not hex, or a working directory that is not absolute
    if text == "2f61":
        assert m.decode_world(text) == (b"/a", {}, frozenset(), None)
        return
    with pytest.raises(ProtocolError):
        m.decode_world(text)


def test_header_carries_the_world_in_both_forms() -> None:
    header = m.RunnerHeader(12, 2, "tv", m.encode_world(b"/x", {b"A": b"1"}))
    assert m.parse_runner_header(header.format()) == header
    handover = m.Handover(header)
    assert m.parse_handover(handover.format()) == handover
    assert m.RunnerHeader(12, 2).format() == "12:2"  # legacy form unchanged


def test_of_client_prefers_the_sent_world_and_falls_back_to_proc() -> None:
    sent = m.RunnerHeader(os.getpid(), 0, "v", m.encode_world(b"/sent", {b"K": b"v"}))
    assert world.of_client(sent) == (b"/sent", {b"K": b"v"}, frozenset(), None)
    vouched = m.RunnerHeader(os.getpid(), 0, "v")
    if sys.platform.startswith("linux"):
        cwd, environ, *_ = world.of_client(vouched)  # type: ignore[misc]
        assert cwd == os.getcwdb()
        assert environ.get(b"PATH") == os.environb.get(b"PATH")
    assert world.of_client(m.RunnerHeader(os.getpid(), 0, "")) is None  # not vouched: no read


def test_enter_and_mismatches_in_a_child(tmp_path: Path) -> None:
    """Run in a fresh interpreter: enter() changes the process's environment and folder."""
    code = textwrap.dedent(f"""
        import os
        from zeuspy.protocol.messages import World
        from zeuspy.shim import world
        os.environ["KEPT"] = "boot"; os.environ["GONE"] = "boot"
        world.remember_boot_environment()
        os.environ["SET_BY_PLAN"] = "plan"          # a phase's action set it
        client = {{b"KEPT": b"client", b"NEW": b"1", b"PATH": os.environb[b"PATH"]}}
        assert world.mismatches(client, ["KEPT"]) == [
            "  KEPT: 'client' here, 'boot' when the phases booted"]
        assert world.mismatches(client, ["PATH", "SET_BY_PLAN", "UNSET"]) == []
        assert world.mismatches({{b"SET_BY_PLAN": b"plan"}}, ["SET_BY_PLAN"]) == []
        assert world.mismatches({{b"SET_BY_PLAN": b"x"}}, ["SET_BY_PLAN"]) == [
            "  SET_BY_PLAN: 'x' here, 'plan' when the phases booted"]
        assert world.mismatches({{}}, ["GONE"]) == [
            "  GONE: unset here, 'boot' when the phases booted"]
        # the master's shell had what the plan would choose anyway (direnv, say)
        assert world.mismatches({{}}, ["GONE"], lambda name: "boot") == []
        assert world.mismatches({{}}, ["GONE"], lambda name: "other") != []
        import signal
        world.enter(World({bytes(tmp_path)!r}, client, frozenset({{signal.SIGUSR1}}), 0o27))
        print(os.getcwd(), os.environ.get("KEPT"), os.environ.get("NEW"),
              os.environ.get("GONE"), os.environ.get("SET_BY_PLAN"),
              signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN, oct(os.umask(0)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path), "client", "1", "None", "plan", "True",
                                   "0o27"]
