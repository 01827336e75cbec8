"""Load a user's review log (CSV) and refuse it, naming column and row, when it does not fit the schema.

Values are read as text first so a bad cell is reported as written, with its 1-based data row and
file line, instead of pandas silently turning a column into strings or NaN.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from training import schema
from training.errors import TrainingError

FIX = (
    "see the README's column table: delta_days, history_seen, history_correct, history_wrong, item_difficulty, recalled"
)


def load_csv(path: Path) -> pd.DataFrame:
    """The validated review log: feature columns as float/int, label 0/1, optional p_true and ids."""
    if not path.is_file():
        raise TrainingError(f"training data {path} does not exist", "pass --data with the path of a CSV file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise TrainingError(f"{path} is empty: no header row and no data", FIX) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{path} is not a readable CSV: {exc}", FIX) from exc
    raw.columns = [str(column).strip() for column in raw.columns]

    missing = [column for column in schema.REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise TrainingError(
            f"{path}: column {missing[0]!r} is missing"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            + f"; found columns: {', '.join(raw.columns) or 'none'}",
            FIX,
        )
    if raw.empty:
        raise TrainingError(f"{path} has a header but no rows", "add review rows below the header")
    return validate(raw, str(path))


def validate(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Convert and check each known column; the first bad cell of a column is reported."""
    frame = pd.DataFrame(index=raw.index)
    frame[schema.DELTA] = _numbers(raw, schema.DELTA, source, minimum=0.0)
    for column in schema.COUNT_COLUMNS:
        frame[column] = _numbers(raw, column, source, minimum=0.0, integer=True).astype("int64")
    frame[schema.DIFFICULTY] = _numbers(raw, schema.DIFFICULTY, source, minimum=0.0, maximum=1.0)
    label = _numbers(raw, schema.LABEL, source, integer=True)
    _first_bad(source, schema.LABEL, raw, ~label.isin([0, 1]), "must be 0 (forgotten) or 1 (recalled)")
    frame[schema.LABEL] = label.astype("int64")
    graded = frame[schema.CORRECT] + frame[schema.WRONG]
    _first_bad(
        source,
        schema.CORRECT,
        raw,
        graded > frame[schema.SEEN],
        f"{schema.CORRECT} + {schema.WRONG} exceeds {schema.SEEN}",
    )
    if schema.TRUE_P in raw.columns:
        frame[schema.TRUE_P] = _numbers(raw, schema.TRUE_P, source, minimum=0.0, maximum=1.0)
    for column in (schema.LEARNER, schema.ITEM):
        if column in raw.columns:
            frame[column] = raw[column]
    return frame.reset_index(drop=True)


def _numbers(
    raw: pd.DataFrame,
    column: str,
    source: str,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> pd.Series:
    text = raw[column].str.strip()
    _first_bad(source, column, raw, text == "", "is empty: a number is required")
    values = pd.to_numeric(text, errors="coerce")
    _first_bad(source, column, raw, values.isna(), "is not a number")
    _first_bad(source, column, raw, ~np.isfinite(values), "is not finite (NaN or infinity)")
    if integer:
        _first_bad(source, column, raw, values != np.floor(values), "is not a whole number")
    if minimum is not None:
        _first_bad(source, column, raw, values < minimum, f"is below {minimum:g}")
    if maximum is not None:
        _first_bad(source, column, raw, values > maximum, f"is above {maximum:g}")
    # pandas' fast parser may differ from the written value in the last bit; Python's float() does not.
    return pd.Series(text.map(float).to_numpy(dtype="float64"), index=raw.index)


def _first_bad(source: str, column: str, raw: pd.DataFrame, bad: pd.Series, what: str) -> None:
    if not bool(bad.any()):
        return
    position = int(np.argmax(bad.to_numpy()))
    value = raw[column].iloc[position]
    raise TrainingError(
        f"{source}: column {column!r}, row {position + 1} (line {position + 2}): value {value!r} {what}"
        f" ({int(bad.sum())} bad row(s) in this column)",
        FIX,
    )


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the data as trained on (canonical CSV of the schema columns), for the manifest."""
    columns = [c for c in [*schema.REQUIRED_COLUMNS, schema.TRUE_P] if c in frame.columns]
    text = frame[columns].to_csv(index=False, float_format="%.17g", lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()
