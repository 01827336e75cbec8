"""The three pin checks: the two locks agree, the model artifact matches the runtime lock,
and (optionally) the installed training environment matches the training lock.

Each returns rows and findings (an "error" fails it); printing and the report file live elsewhere.
"""

from __future__ import annotations

from ci.pins.evidence import ModelEvidence
from ci.pins.installed_check import INSTALLED_COLUMNS, check_installed
from ci.pins.lock_check import check_locks
from ci.pins.locks import read_lock
from ci.pins.model_check import check_model
from ci.pins.result import CheckResult, Finding, PinsInputs, PinsResult, Row, display

__all__ = ["CheckResult", "Finding", "PinsInputs", "PinsResult", "Row", "check_installed", "check_locks", "run_pins"]


def run_pins(inputs: PinsInputs) -> PinsResult:
    training = read_lock(inputs.training_lock, display(inputs.training_lock, inputs.root))
    layer = read_lock(inputs.layer_lock, display(inputs.layer_lock, inputs.root))
    model = ModelEvidence.gather(inputs)
    checks = [check_locks(training, layer, model), check_model(layer, model, inputs)]
    if inputs.installed:
        checks.append(check_installed(training, inputs.target_python))
    else:
        skipped = CheckResult("installed", "Installed training environment", INSTALLED_COLUMNS)
        skipped.skipped = "not requested (pass --installed where training runs)"
        checks.append(skipped)
    return PinsResult(checks=checks, scan=model.scan, model_info=model.info())
