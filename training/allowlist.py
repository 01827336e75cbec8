"""Training writes only bundles the handler will load: every global the pickle references must be in
handler/model_globals.txt, and the estimator's class must be declared in training/model.py.

A new estimator pickles new classes; failing here, with the exact lines to add, is the one-line fix
(the handler and the pipeline would otherwise refuse the model after a whole build).
"""

from __future__ import annotations

from handler.model_globals import ALLOWED_GLOBALS_FILE, allowed_globals, display
from handler.safe_unpickle import referenced_globals
from training.errors import TrainingError
from training.model import ESTIMATOR_CLASSES

ALLOW_LIST = "handler/model_globals.txt"


def missing_globals(artifact: bytes) -> list[tuple[str, str]]:
    """The globals of this process's own dump that the allow-list lacks, sorted."""
    return sorted(referenced_globals(artifact) - allowed_globals(ALLOWED_GLOBALS_FILE))


def require_loadable(artifact: bytes, estimator: object) -> None:
    cls = type(estimator)
    if cls not in ESTIMATOR_CLASSES:
        declared = ", ".join(c.__name__ for c in ESTIMATOR_CLASSES)
        raise TrainingError(
            f"the bundle holds a {cls.__module__}.{cls.__qualname__}, which training/model.py does not declare "
            f"(ESTIMATOR_CLASSES: {declared})",
            f"add {cls.__qualname__} to ESTIMATOR_CLASSES in training/model.py and train again",
        )
    missing = missing_globals(artifact)
    if missing:
        lines = "".join(f"\n      {display(module, name)}" for module, name in missing)
        raise TrainingError(
            f"the bundle references {len(missing)} global(s) that {ALLOW_LIST} does not list, so the handler "
            f"would refuse to load it: {', '.join(f'{m}.{n}' for m, n in missing)}",
            f"if they are classes or data constructors of the estimator you chose (never a function that reads, "
            f"writes or imports), add these lines to {ALLOW_LIST} and train again:{lines}",
        )
