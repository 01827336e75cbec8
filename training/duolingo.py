"""Convert Duolingo's public HLR log (learning_traces.13m.csv, Settles & Meeder 2016) to our columns.

The column mapping and its caveats (no true probability, item difficulty from the same log): docs/model.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from training import schema
from training.errors import TrainingError

SOURCE_COLUMNS = ["delta", "user_id", "lexeme_id", "history_seen", "history_correct", "session_seen", "session_correct"]
PRIOR_WEIGHT = 10.0  # answers' worth of the global recall rate mixed into each lexeme's rate


def convert(traces: pd.DataFrame, sample: int | None = None, seed: int = 1) -> pd.DataFrame:
    missing = [column for column in SOURCE_COLUMNS if column not in traces.columns]
    if missing:
        raise TrainingError(
            f"not a Duolingo HLR trace file: column {missing[0]!r} is missing; found: {', '.join(traces.columns)}",
            "download learning_traces.13m.csv from https://github.com/duolingo/halflife-regression",
        )
    if sample is not None and sample < len(traces):
        traces = traces.sample(n=sample, random_state=seed).sort_index()
    seen = traces["session_seen"].to_numpy(dtype="int64")
    correct = traces["session_correct"].to_numpy(dtype="int64")

    by_lexeme = traces.groupby("lexeme_id")[["session_correct", "session_seen"]].sum()
    global_rate = by_lexeme["session_correct"].sum() / max(by_lexeme["session_seen"].sum(), 1)
    rate = (by_lexeme["session_correct"] + PRIOR_WEIGHT * global_rate) / (by_lexeme["session_seen"] + PRIOR_WEIGHT)
    difficulty = (1.0 - traces["lexeme_id"].map(rate)).clip(0.0, 1.0).round(6)

    base = pd.DataFrame(
        {
            schema.LEARNER: traces["user_id"].to_numpy(),
            schema.ITEM: traces["lexeme_id"].to_numpy(),
            schema.DELTA: (traces["delta"].to_numpy(dtype="float64") / 86400.0).round(6),
            schema.SEEN: traces["history_seen"].to_numpy(dtype="int64"),
            schema.CORRECT: traces["history_correct"].to_numpy(dtype="int64"),
            schema.WRONG: (traces["history_seen"] - traces["history_correct"]).to_numpy(dtype="int64"),
            schema.DIFFICULTY: difficulty.to_numpy(),
        }
    )
    rows = np.repeat(np.arange(len(base)), seen)
    answers = base.iloc[rows].reset_index(drop=True)
    # Within each session, the first session_correct answers are the recalls.
    position = np.arange(len(rows)) - np.repeat(np.cumsum(seen) - seen, seen)
    answers[schema.LABEL] = (position < np.repeat(correct, seen)).astype("int64")
    return answers


def read_traces(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TrainingError(f"{path} does not exist", "pass the path of learning_traces.13m.csv(.gz)")
    return pd.read_csv(path, usecols=lambda c: c in SOURCE_COLUMNS)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m training.duolingo", description=__doc__.split("\n")[0])
    cli.add_argument("traces", type=Path, help="learning_traces.13m.csv(.gz)")
    cli.add_argument("out", type=Path, help="the CSV to write (our columns)")
    cli.add_argument("--sample", type=int, default=None, help="use this many trace rows, drawn at random")
    cli.add_argument("--seed", type=int, default=1)
    args = cli.parse_args(argv)
    try:
        answers = convert(read_traces(args.traces), args.sample, args.seed)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    answers.to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(answers)} answers from {answers[schema.LEARNER].nunique()} learners")
    return 0


if __name__ == "__main__":
    sys.exit(main())
