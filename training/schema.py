"""The columns of a review log: one definition shared by the simulator, the CSV loader and the trainer.

The model's inputs are `FEATURE_NAMES`, in this order; the bundle stores them so the handler can
build its input frame without importing this package (training/ is not deployed).
"""

from __future__ import annotations

# Days since the learner last practised the item (Settles & Meeder's Δ), fractional.
DELTA = "delta_days"
# Times the learner has seen the item before this review (lessons and graded practice).
SEEN = "history_seen"
# Of those, graded practices answered correctly / wrongly (correct + wrong <= seen).
CORRECT = "history_correct"
WRONG = "history_wrong"
# How hard the item is, in [0, 1] (0 easy, 1 hard).
DIFFICULTY = "item_difficulty"

FEATURE_NAMES: list[str] = [DELTA, SEEN, CORRECT, WRONG, DIFFICULTY]
COUNT_COLUMNS: list[str] = [SEEN, CORRECT, WRONG]

# The outcome of this review: 1 recalled, 0 forgotten.
LABEL = "recalled"
# The simulator's true recall probability; optional in a user's CSV (real logs do not have it).
TRUE_P = "p_true"
# Optional identifiers, kept for grouping the held-out split by learner.
LEARNER = "learner_id"
ITEM = "item_id"

REQUIRED_COLUMNS: list[str] = [*FEATURE_NAMES, LABEL]
OPTIONAL_COLUMNS: list[str] = [TRUE_P, LEARNER, ITEM]
