"""The hostile-CSMS fuzzer (issue 13), bounded for the suite: ``CHARGEPOINT_FUZZ_FRAMES`` (default 20000) frames
against a real daemon that charges throughout; ``python -m bench --hostile-csms --hostile-frames 1000000`` runs it
big."""

from __future__ import annotations

import os

import pytest

from bench.hostile_csms import fuzz

FRAMES = int(os.environ.get("CHARGEPOINT_FUZZ_FRAMES", "20000"))


@pytest.mark.timeout(max(120, FRAMES // 100))
async def test_a_hostile_csms_cannot_take_the_charger_down() -> None:
    report = await fuzz(FRAMES, seed=int(os.environ.get("CHARGEPOINT_FUZZ_SEED", "13")))
    summary = "\n".join(report.lines())
    assert report.daemon_alive, summary
    assert report.calls_sent > FRAMES // 3, summary
    assert report.unanswered == [] and report.answered_twice == [], summary
    assert report.stop_transactions == 0 and report.final_status == "Charging" and not report.faults, summary
    assert report.rss_growth_MiB < report.rss_growth_limit_MiB, summary
    assert report.calls_sent - report.refused_over_limit > 100, summary  # the handlers were fuzzed, not only refused
