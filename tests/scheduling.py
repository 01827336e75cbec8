"""How `make test` spreads the suite over the cores (pytest-xdist).

Units are whole files (a file's module fixtures are built once), except that every file using the
session's real layer build (a file naming `built_layer`) is one unit: the build runs once per run, not
once per worker. Units start longest first (the longest-processing-time rule), so no long file starts
last while the other workers idle: the times are each test's own from the last run on this checkout
(build/cache/test-durations.json, written by the controller), or, before any run (a fresh clone in CI),
a test's `cost` mark (seconds, on the few longest), or ten times a quick test's for one marked slow.

xdist's own `--dist loadgroup` cannot express this with pytest 9 (it renames `item._nodeid`, which pytest 9
no longer reads, so every group is silently ignored): the controller's scheduler groups the files itself.
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from ci.paths import REPO_ROOT

DURATIONS = REPO_ROOT / "build" / "cache" / "test-durations.json"
SHARED_BUILD = "session-build"
SHARED_BUILD_FIXTURE = "built_layer"
UNKNOWN_SECONDS = 0.5  # a test the last run did not time
SLOW_SECONDS = 5.0  # a slow test, when no run has been timed yet


@functools.cache
def uses_shared_build(file: str) -> bool:
    try:
        return SHARED_BUILD_FIXTURE in (REPO_ROOT / file).read_text()
    except OSError:
        return False


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its file, or the one unit of every file using the session's layer build."""
    file = nodeid.split("::", 1)[0]
    return SHARED_BUILD if uses_shared_build(file) else file


class UnitScheduling(LoadScopeScheduling):
    """xdist's file scheduling with unit_of() as the scope; units are queued in the workers' collection order."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # the order is schedule()'s: longest first

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


def read_durations() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def estimate(item: pytest.Item) -> float:
    """A test's seconds before any run has been timed."""
    marked = item.get_closest_marker("cost")
    if marked is not None:
        return float(marked.args[0])
    return SLOW_SECONDS if item.get_closest_marker("slow") else UNKNOWN_SECONDS


class Ordering:
    """On every worker: the items longest unit first (after pytest's own reordering); within a unit the files
    and tests keep their order."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        timed = read_durations()
        cost: dict[str, float] = defaultdict(float)
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            unit = unit_of(item.nodeid)
            first.setdefault(unit, index)
            if timed:
                cost[unit] += timed.get(item.nodeid, UNKNOWN_SECONDS)
            else:
                cost[unit] += estimate(item)
        items.sort(key=lambda item: (-cost[unit_of(item.nodeid)], first[unit_of(item.nodeid)]))

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: absent under -p no:xdist
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> UnitScheduling:
        return UnitScheduling(config, log)


class DurationRecorder:
    """On the controller (or in a run without xdist): each test's setup + call + teardown seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self) -> None:
        if not self.seconds:
            return
        merged = {**read_durations(), **{k: round(v, 3) for k, v in self.seconds.items()}}
        DURATIONS.parent.mkdir(parents=True, exist_ok=True)
        partial = DURATIONS.with_name(f"{DURATIONS.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(merged, indent=0, sort_keys=True))
        partial.replace(DURATIONS)  # a new file: the cache may be hard-linked from another checkout


def register(config: pytest.Config) -> None:
    config.pluginmanager.register(Ordering(), "test-ordering")
    if not hasattr(config, "workerinput"):  # the workers' reports all reach the controller
        config.pluginmanager.register(DurationRecorder(), "test-durations")
