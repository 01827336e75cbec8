"""Check 1: the training lock and the layer lock pin every distribution that ends up in the
pickle with `==`, to the same version."""

from __future__ import annotations

from ci.lock.lockfile import LockFile, Pin
from ci.pins.evidence import ModelEvidence
from ci.pins.locks import pinned_version, why_not_pinned
from ci.pins.policy import distribution_of
from ci.pins.result import CORE_DISTRIBUTIONS, PANDAS, CheckResult, Row
from ci.pins.scan import PickleScan

_LOCK_COLUMNS = ("package", "training lock", "layer lock (runtime)", "model manifest", "status")


def pinned(entry: Pin | None) -> str:
    if entry is None:
        return "(missing)"
    return pinned_version(entry) or (entry.specifier or "(unpinned)")


def check_locks(training: LockFile, layer: LockFile, model: ModelEvidence) -> CheckResult:
    check = CheckResult("locks", "Training lock vs layer lock", _LOCK_COLUMNS)
    referenced = model.referenced_distributions()
    wanted = list(CORE_DISTRIBUTIONS)
    for dist in sorted(referenced - set(wanted)):
        wanted.append(dist)
    if PANDAS not in wanted and training.get(PANDAS) and layer.get(PANDAS):
        wanted.append(PANDAS)  # shipped and trained with: its version matters for anything pandas produced
    manifest_versions = model.manifest_versions()
    for dist in wanted:
        t_entry, r_entry = training.get(dist), layer.get(dist)
        why = (
            f" (the model references {_example_module(model.scan, dist)})"
            if dist in referenced and dist not in CORE_DISTRIBUTIONS
            else ""
        )
        ok = True
        for lock, entry in ((training, t_entry), (layer, r_entry)):
            if entry is None:
                check.error(
                    f"{lock.display} has no entry for {dist}{why}: its version at training and at runtime "
                    "cannot be proven equal",
                    f"add {dist} to the .in file next to {lock.display} and run `python -m ci lock`",
                    lock.display,
                )
                ok = False
            elif pinned_version(entry) is None:
                check.error(
                    f"{lock.display}:{entry.line}: {entry.text} {why_not_pinned(entry)}{why}",
                    f"pin it exactly ({dist}==VERSION) with `python -m ci lock`",
                    lock.display,
                    entry.line,
                )
                ok = False
        if ok and t_entry and r_entry and pinned_version(t_entry) != pinned_version(r_entry):
            check.error(
                f"{dist} {pinned_version(t_entry)} in {training.display}:{t_entry.line} != "
                f"{dist} {pinned_version(r_entry)} in {layer.display}:{r_entry.line}: the model would be pickled "
                "by one version and unpickled by another",
                "constrain the training lock to the layer lock (-c) and run `python -m ci lock`",
                training.display,
                t_entry.line,
            )
            ok = False
        check.rows.append(
            Row(dist, pinned(t_entry), pinned(r_entry), manifest_versions.get(dist, "-"), "ok" if ok else "FAIL")
        )
    return check


def _example_module(scan: PickleScan | None, dist: str) -> str:
    if scan is None:
        return dist
    paths = sorted(ref.path for ref in scan.references.values() if distribution_of(ref.module) == dist)
    return paths[0] if paths else dist
