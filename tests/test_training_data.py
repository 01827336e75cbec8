"""A user's CSV: accepted when it fits the documented columns, refused naming column and row when not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training import schema
from training.dataset import fingerprint, load_csv
from training.errors import TrainingError
from training.simulator import simulate

HEADER = "delta_days,history_seen,history_correct,history_wrong,item_difficulty,recalled\n"
GOOD_ROW = "1.5,4,2,1,0.3,1\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(TrainingError) as caught:
        load_csv(path)
    return str(caught.value)


def test_simulated_log_round_trips_through_csv(tmp_path: Path) -> None:
    log = simulate(11, learners=20, items=10, reviews=500)
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    loaded = load_csv(path)
    for column in [*schema.REQUIRED_COLUMNS, schema.TRUE_P]:
        pd.testing.assert_series_equal(loaded[column], log[column], check_dtype=False, check_exact=False)
    assert fingerprint(loaded) == fingerprint(log)


def test_optional_columns_may_be_absent_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    loaded = load_csv(write(tmp_path, "lexeme," + HEADER.replace("\n", ",note\n") + "x," + GOOD_ROW.strip() + ",hi\n"))
    assert list(loaded.columns) == schema.REQUIRED_COLUMNS
    assert loaded.iloc[0].to_dict() == {
        "delta_days": 1.5,
        "history_seen": 4,
        "history_correct": 2,
        "history_wrong": 1,
        "item_difficulty": 0.3,
        "recalled": 1,
    }


def test_missing_column_is_named(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, HEADER.replace(",item_difficulty", "") + "1.5,4,2,1,1\n"))
    assert "column 'item_difficulty' is missing" in message
    assert "found columns: delta_days, history_seen" in message


def test_wrong_type_names_column_row_and_value(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, HEADER + GOOD_ROW + GOOD_ROW + "2.0,five,2,1,0.3,0\n"))
    assert "column 'history_seen', row 3 (line 4): value 'five' is not a number" in message


@pytest.mark.parametrize(
    ("row", "column", "what"),
    [
        ("1.5,4,2,1,0.3,\n", "recalled", "is empty"),
        ("-1,4,2,1,0.3,1\n", "delta_days", "is below 0"),
        ("1.5,4.5,2,1,0.3,1\n", "history_seen", "is not a whole number"),
        ("1.5,4,2,-1,0.3,1\n", "history_wrong", "is below 0"),
        ("1.5,4,2,1,1.3,1\n", "item_difficulty", "is above 1"),
        ("1.5,4,2,1,0.3,2\n", "recalled", "must be 0 (forgotten) or 1 (recalled)"),
        ("inf,4,2,1,0.3,1\n", "delta_days", "is not finite"),
        ("1.5,4,3,2,0.3,1\n", "history_correct", "history_correct + history_wrong exceeds history_seen"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, row: str, column: str, what: str) -> None:
    message = refusal(write(tmp_path, HEADER + GOOD_ROW + row))
    assert f"column {column!r}, row 2 (line 3)" in message
    assert what in message


def test_header_without_rows_is_refused(tmp_path: Path) -> None:
    assert "has a header but no rows" in refusal(write(tmp_path, HEADER))


def test_empty_file_and_missing_file_are_refused(tmp_path: Path) -> None:
    assert "is empty" in refusal(write(tmp_path, ""))
    assert "does not exist" in refusal(tmp_path / "nope.csv")
