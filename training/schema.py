"""The columns of a review log: one definition shared by the simulator, the CSV loader and the trainer.

The model's inputs are `FEATURE_NAMES`, in this order, as the handler's contract states them
(handler/contract.py: training may import handler/, never the reverse); the bundle stores them too.
"""

from __future__ import annotations

from handler import contract

# Days since the learner last practised the item (Settles & Meeder's Δ), fractional.
DELTA = contract.ELAPSED
# Times the learner has seen the item before this review (lessons and graded practice).
SEEN = contract.SEEN
# Of those, graded practices answered correctly / wrongly (correct + wrong <= seen).
CORRECT = contract.CORRECT
WRONG = contract.WRONG
# How hard the item is, in [0, 1] (0 easy, 1 hard).
DIFFICULTY = contract.DIFFICULTY

FEATURE_NAMES: list[str] = list(contract.FEATURE_NAMES)
COUNT_COLUMNS: list[str] = [name for name in FEATURE_NAMES if name in contract.COUNTS]

# The outcome of this review: 1 recalled, 0 forgotten.
LABEL = "recalled"
# The simulator's true recall probability; optional in a user's CSV (real logs do not have it).
TRUE_P = "p_true"
# Optional identifiers, kept for grouping the held-out split by learner.
LEARNER = "learner_id"
ITEM = "item_id"

REQUIRED_COLUMNS: list[str] = [*FEATURE_NAMES, LABEL]
OPTIONAL_COLUMNS: list[str] = [TRUE_P, LEARNER, ITEM]
