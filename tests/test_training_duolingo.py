"""Duolingo's HLR trace format converts to our columns and then loads and trains like any CSV."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from training import schema
from training.dataset import load_csv

TRACES = (
    "p_recall,timestamp,delta,user_id,learning_language,ui_language,lexeme_id,lexeme_string,"
    "history_seen,history_correct,session_seen,session_correct\n"
    "1.0,1362076081,27649635,u:FO,de,en,76390c1350a8dac31186187e2fe1e178,lernt/lernen<vblex><pri><p3><sg>,6,4,2,2\n"
    "0.5,1362076081,27649635,u:FO,de,en,7dfd7086f3671685e2cf1c1da72796d7,die/die<det><def><f><sg><nom>,4,4,2,1\n"
    "0.0,1362082032,444407,u:dDwF,es,en,5ee8ecc6f10b3dc3a6c5cd0ca4bb8af5,un/un<det><ind><m><sg>,5,2,1,0\n"
)


def test_traces_convert_to_one_row_per_answer(tmp_path: Path) -> None:
    traces = tmp_path / "learning_traces.csv"
    traces.write_text(TRACES)
    out = tmp_path / "answers.csv"
    result = run_cli("-m", "training.duolingo", str(traces), str(out))
    assert "wrote" in result.stdout and "5 answers from 2 learners" in result.stdout
    answers = load_csv(out)  # passes our own validation
    assert answers[schema.LABEL].tolist() == [1, 1, 1, 0, 0]
    assert answers[schema.WRONG].tolist() == [2, 2, 0, 0, 3]
    assert answers[schema.DELTA].iloc[0] == round(27649635 / 86400, 6)
    assert answers[schema.DIFFICULTY].between(0, 1).all()
    # The lexeme that was always recalled is easier than the one always forgotten.
    assert answers[schema.DIFFICULTY].iloc[0] < answers[schema.DIFFICULTY].iloc[4]


def test_a_file_that_is_not_a_trace_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = run_cli("-m", "training.duolingo", str(other), str(tmp_path / "out.csv"), check=False)
    assert result.returncode == 1 and "column 'delta' is missing" in result.stderr
