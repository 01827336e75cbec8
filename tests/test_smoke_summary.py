"""What `python -m ci smoke` prints: each cause once, and `partial` only for a run on other events."""

from __future__ import annotations

from ci.arch.interpreter import MISSING, TargetInterpreter
from ci.cmd_smoke import render
from ci.config import load_config
from ci.smoke.harness import unavailable

WHY = (
    "no aarch64 interpreter on this x86_64 host (no qemu-aarch64-static on PATH): run this on an aarch64 host "
    "(GitHub runner ubuntu-24.04-arm) or install emulation: make emulation"
)


def test_a_smoke_run_that_could_not_start_names_its_cause_and_fix_once_and_is_not_called_partial() -> None:
    result = unavailable(load_config(), TargetInterpreter(MISSING, None, WHY))
    printed = render(result.report, result.failures)
    assert printed.count("make emulation") == 1, printed
    assert "partial" not in printed and "--events" not in printed
    assert printed.splitlines() == [
        "proof missing: invocation, limits (why: below); deploy refuses this report",
        f"FAILED: smoke did not run: {WHY}",
        "smoke: FAILED (1 problem(s))",
    ]


def test_a_run_on_other_events_than_the_committed_ones_says_partial_and_how_to_run_them_all() -> None:
    report = {"init": {"state": "done"}, "events": [], "partial": True, "events_run": ["direct"], "proofs": {}}
    printed = render(report, [])
    assert "partial: ran direct, not exactly the committed events" in printed
    assert "run `python -m ci smoke` without --events" in printed
