"""How make test spreads the suite: the session's layer build once per run, longest units first, times kept."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ci.paths import REPO_ROOT
from tests import scheduling


@dataclass
class Item:
    """What the ordering hook reads of a collected test."""

    nodeid: str
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_every_file_using_the_session_build_is_one_unit_and_the_rest_are_their_own_files() -> None:
    users = sorted(
        f"tests/{path.name}" for path in (REPO_ROOT / "tests").glob("test_*.py") if "built_layer" in path.read_text()
    )
    assert {"tests/test_abi.py", "tests/test_smoke_real.py", "tests/test_budget_cli.py"} <= set(users)
    assert {scheduling.unit_of(f"{file}::test_x") for file in users} == {scheduling.SHARED_BUILD}
    assert scheduling.unit_of("tests/test_config.py::test_x[a]") == "tests/test_config.py"
    assert scheduling.unit_of("tests/no_such_file.py::test_x") == "tests/no_such_file.py"


def test_the_longest_unit_starts_first_and_each_unit_keeps_its_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "read_durations", dict)  # before any run: a slow test counts as ten
    items = [
        Item("tests/test_a.py::one"),
        Item("tests/test_b.py::one", {"slow"}),
        Item("tests/test_a.py::two"),
        Item("tests/test_b.py::two"),
        Item("tests/test_c.py::one"),
    ]
    scheduling.Ordering().pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "tests/test_b.py::one",
        "tests/test_b.py::two",
        "tests/test_a.py::one",
        "tests/test_a.py::two",
        "tests/test_c.py::one",
    ]
    timed = {"tests/test_c.py::one": 30.0, "tests/test_b.py::one": 4.0}  # the last run's own times win
    monkeypatch.setattr(scheduling, "read_durations", lambda: timed)
    scheduling.Ordering().pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items][:1] == ["tests/test_c.py::one"]
    assert [item.nodeid for item in items][-2:] == ["tests/test_a.py::one", "tests/test_a.py::two"]


@dataclass
class Report:
    nodeid: str
    duration: float


def test_times_are_summed_per_test_and_merged_into_a_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    durations = tmp_path / "cache" / "test-durations.json"
    monkeypatch.setattr(scheduling, "DURATIONS", durations)
    durations.parent.mkdir()
    durations.write_text(json.dumps({"tests/test_old.py::kept": 2.0, "tests/test_a.py::one": 9.0}))
    linked = tmp_path / "linked.json"
    linked.hardlink_to(durations)  # another checkout's cache, linked with cp -al (make bench-ci)

    recorder = scheduling.DurationRecorder()
    for phase in (0.25, 1.5, 0.25):  # setup, call, teardown
        recorder.pytest_runtest_logreport(Report("tests/test_a.py::one", phase))  # type: ignore[arg-type]
    recorder.pytest_sessionfinish()

    assert json.loads(durations.read_text()) == {"tests/test_a.py::one": 2.0, "tests/test_old.py::kept": 2.0}
    assert json.loads(linked.read_text())["tests/test_a.py::one"] == 9.0  # replaced, never written in place
    assert not list(durations.parent.glob("*.partial"))


def test_a_missing_or_unreadable_file_means_no_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "DURATIONS", tmp_path / "none.json")
    assert scheduling.read_durations() == {}
    (tmp_path / "none.json").write_text("[1, 2")
    assert scheduling.read_durations() == {}


@dataclass
class Marked:
    nodeid: str
    seconds: float

    def get_closest_marker(self, name: str) -> object | None:
        return pytest.mark.cost(self.seconds).mark if name == "cost" else None


def test_before_any_run_a_cost_mark_gives_a_tests_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "read_durations", dict)
    items = [Item("tests/test_a.py::one", {"slow"}), Marked("tests/test_b.py::emulated", 50.0)]
    scheduling.Ordering().pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == ["tests/test_b.py::emulated", "tests/test_a.py::one"]
    assert scheduling.estimate(items[0]) == 50.0  # type: ignore[arg-type]
