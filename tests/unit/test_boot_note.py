"""The still-booting note a waiting client gets (master/request.py, docs/protocol.md step 3)."""

from __future__ import annotations

import time

from zeuspy.master.request import (
    BOOT_NOTE_DELAY,
    BOOT_NOTE_INTERVAL,
    BOOT_NOTE_LINES,
    _still_booting,
)
from zeuspy.master.tree import Phase, PhaseState


def chain() -> tuple[Phase, Phase]:
    boot = Phase("boot", None)
    app = Phase("app", boot)
    boot.children.append(app)
    return boot, app


def test_names_the_booting_phase_and_how_long_it_has_booted() -> None:
    _, app = chain()
    app.state = PhaseState.BOOTING
    app.boot_started = time.monotonic() - 12.4
    assert _still_booting(app, 6.0) == ("zeus: phase app still booting after 12 s "
                                        "(its output: .zeus/master.log)\n")


def test_names_the_ancestor_a_waiting_phase_waits_for() -> None:
    boot, app = chain()
    boot.state = PhaseState.BOOTING
    boot.boot_started = time.monotonic() - 30.2
    assert _still_booting(app, 11.0).startswith("zeus: phase boot still booting after 30 s ")


def test_without_a_boot_under_way_it_says_how_long_the_client_waited() -> None:
    _, app = chain()  # between a death and its restart: nothing booting
    assert _still_booting(app, 16.0) == ("zeus: still waiting for phase app after 16 s "
                                         "(its output: .zeus/master.log)\n")


def test_the_notes_are_few() -> None:
    # The last note comes about a minute in; a stuck boot does not fill the user's terminal.
    assert BOOT_NOTE_DELAY + (BOOT_NOTE_LINES - 1) * BOOT_NOTE_INTERVAL <= 60
