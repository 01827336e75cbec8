"""Check 2: the model artifact, read statically, agrees with the layer lock: digest, manifest
versions, the versions the estimators recorded, numpy generation, allowed names, class paths."""

from __future__ import annotations

from pathlib import Path

from ci.lock.lockfile import LockFile
from ci.pins.evidence import ModelEvidence
from ci.pins.guard import allowed_distributions, refusals
from ci.pins.lock_check import pinned
from ci.pins.locks import pinned_version
from ci.pins.policy import PACKAGES, distribution_of, judge
from ci.pins.result import CORE_DISTRIBUTIONS, RETRAIN, CheckResult, PinsInputs, Row, display
from ci.pins.scan import PickleScan
from ci.reports import sha256_file

_MODEL_COLUMNS = ("package", "training (manifest)", "runtime (layer lock)", "model (pickle scan)", "status")


def check_model(layer: LockFile, model: ModelEvidence, inputs: PinsInputs) -> CheckResult:
    check = CheckResult("model", "Model artifact vs layer lock (static scan, never unpickled)", _MODEL_COLUMNS)
    check.findings.extend(model.problems)
    retrain = RETRAIN.format(training=display(inputs.training_lock, inputs.root))
    _check_digest(check, model)
    _check_is_deployed_artifact(check, model, inputs)
    statuses: dict[str, str] = {}
    scan_column: dict[str, str] = {}
    # What the pickle itself says comes first: it cannot be edited to agree, a manifest can.
    if model.scan is not None:
        _check_scan(check, layer, model, model.scan, inputs, statuses, scan_column, retrain)
    _check_manifest_versions(check, layer, model, inputs, statuses, retrain)
    versions = model.manifest_versions()
    names = ["python", *CORE_DISTRIBUTIONS]
    names += sorted((set(versions) | model.referenced_distributions()) - set(names))
    for name in names:
        runtime = inputs.target_python if name == "python" else pinned(layer.get(name))
        recorded, scanned = versions.get(name, "-"), scan_column.get(name, "-")
        if model.scan is not None and name in PACKAGES.values() and scanned == "-":
            scanned = "not referenced"
        judged = recorded != "-" or scanned != "-"
        check.rows.append(Row(name, recorded, runtime, scanned, statuses.get(name, "ok" if judged else "-")))
    return check


def _check_digest(check: CheckResult, model: ModelEvidence) -> None:
    if model.manifest is None or model.artifact_sha256 is None:
        return
    recorded = model.manifest.get("sha256")
    if recorded != model.artifact_sha256:
        check.error(
            f"{model.manifest_display} records sha256 {recorded} but {model.model_display} has sha256 "
            f"{model.artifact_sha256}: the manifest does not describe this artifact",
            "retrain (`python -m training`) so model.joblib and model.json are written together; "
            "never copy one without the other",
        )
    name = model.manifest.get("artifact")
    if name is not None and name != Path(model.model_display).name:
        check.warn(f"{model.manifest_display} names artifact {name!r}, but the scanned file is {model.model_display}")


def _check_is_deployed_artifact(check: CheckResult, model: ModelEvidence, inputs: PinsInputs) -> None:
    """pins.json vouches for build/model/model.joblib by digest: it must be the file scanned."""
    deployed = inputs.deployed_model
    if deployed is None or not deployed.is_file() or model.artifact_sha256 is None:
        return
    if sha256_file(deployed) != model.artifact_sha256:
        check.error(
            f"the scanned artifact {model.model_display} is not {display(deployed, inputs.root)}, which deploy "
            "would upload and this report would vouch for",
            "scan the artifact that will be deployed (omit --model) or pass a separate --build-dir",
        )


def _check_manifest_versions(
    check: CheckResult,
    layer: LockFile,
    model: ModelEvidence,
    inputs: PinsInputs,
    statuses: dict[str, str],
    retrain: str,
) -> None:
    if model.manifest is None:
        return
    versions = model.manifest_versions()
    python = versions.get("python")
    if python is None:
        check.error(f"{model.manifest_display} records no python version", retrain)
        statuses["python"] = "FAIL"
    elif ".".join(python.split(".")[:2]) != inputs.target_python:
        check.error(
            f"python {python} in {model.manifest_display} != the Lambda runtime's Python {inputs.target_python}",
            f"train with Python {inputs.target_python} (the target in pipeline.toml)",
        )
        statuses["python"] = "FAIL"
    required = set(CORE_DISTRIBUTIONS) | model.referenced_distributions()
    others = sorted((required | (set(versions) & set(PACKAGES.values()))) - set(CORE_DISTRIBUTIONS))
    for dist in [*CORE_DISTRIBUTIONS, *others]:
        recorded = versions.get(dist)
        entry = layer.get(dist)
        runtime = pinned_version(entry)
        if recorded is None:
            check.error(f"{model.manifest_display} records no version for {dist}", retrain)
            statuses[dist] = "FAIL"
        elif runtime is None:
            pass  # the locks check names the missing or loose pin
        elif recorded != runtime:
            check.error(
                f"{dist} {recorded} in {model.manifest_display} != {dist} {runtime} in "
                f"{layer.display}:{entry.line if entry else '?'}: the model was trained with another version "
                "than the layer ships",
                retrain,
            )
            statuses[dist] = "FAIL"


def _check_scan(
    check: CheckResult,
    layer: LockFile,
    model: ModelEvidence,
    scan: PickleScan,
    inputs: PinsInputs,
    statuses: dict[str, str],
    column: dict[str, str],
    retrain: str,
) -> None:
    sklearn_entry = layer.get("scikit-learn")
    sklearn_runtime = pinned_version(sklearn_entry)
    found = scan.versions_of_sklearn()
    column["scikit-learn"] = ", ".join(sorted(found)) or "(none recorded)"
    for version, owners in sorted(found.items()):
        if sklearn_runtime is not None and version != sklearn_runtime:
            shown = ", ".join(sorted(set(owners))[:3]) + (" ..." if len(set(owners)) > 3 else "")
            check.error(
                f"_sklearn_version {version} in the model ({shown}) != scikit-learn {sklearn_runtime} in "
                f"{layer.display}: scikit-learn {sklearn_runtime} would unpickle estimators written by {version}",
                retrain,
            )
            statuses["scikit-learn"] = "FAIL"
    manifest_sklearn = model.manifest_versions().get("scikit-learn")
    if manifest_sklearn and found and set(found) != {manifest_sklearn}:
        check.error(
            f"{model.manifest_display} says scikit-learn {manifest_sklearn}, but the pickled estimators record "
            f"{', '.join(sorted(found))}: the manifest does not describe how this model was made",
            retrain,
        )
        statuses["scikit-learn"] = "FAIL"
    if not found and any(distribution_of(m) == "scikit-learn" for m in scan.modules):
        check.warn("the pickle references scikit-learn classes but records no _sklearn_version")

    _check_numpy_generation(check, layer, scan, statuses, column, retrain)
    allowed_dists = allowed_distributions(layer)
    for dist in sorted(model.referenced_distributions() - {"scikit-learn", "numpy"}):
        column[dist] = "referenced"
    for finding in refusals(scan, allowed_dists, sklearn_runtime):
        check.error(finding.message, finding.fix)
    _check_existence(check, layer, scan, inputs, allowed_dists, statuses)


def _check_numpy_generation(
    check: CheckResult,
    layer: LockFile,
    scan: PickleScan,
    statuses: dict[str, str],
    column: dict[str, str],
    retrain: str,
) -> None:
    entry = layer.get("numpy")
    runtime = pinned_version(entry)
    numpy2 = sorted({m for m in scan.modules if m == "numpy._core" or m.startswith("numpy._core.")})
    numpy1 = sorted({m for m in scan.modules if m == "numpy.core" or m.startswith("numpy.core.")})
    column["numpy"] = "2.x (numpy._core)" if numpy2 else "1.x (numpy.core)" if numpy1 else "(no version marks)"
    if runtime is None:
        return
    runtime_major = int(runtime.split(".")[0])
    if numpy2 and runtime_major < 2:
        for module in numpy2:
            check.error(
                f"references {module}: pickled under numpy 2.x; numpy {runtime} in {layer.display} cannot load it "
                "reliably (numpy 1.x before 1.26 has no numpy._core at all, 1.26 only stubs for a few of its modules)",
                retrain,
            )
        statuses["numpy"] = "FAIL"
    elif numpy1 and runtime_major >= 2:
        check.warn(
            f"references {', '.join(numpy1)}: pickled under numpy 1.x; numpy {runtime} loads it only through "
            "its deprecated numpy.core aliases",
            retrain,
        )


def _check_existence(
    check: CheckResult,
    layer: LockFile,
    scan: PickleScan,
    inputs: PinsInputs,
    allowed_dists: set[str],
    statuses: dict[str, str],
) -> None:
    """Does every referenced class/function exist in the runtime's versions of the libraries?

    Answered by the probe environment only for distributions whose installed version equals
    the layer lock; for the others the sub-check is skipped and said so.
    """
    from ci.pins.probe import probe

    candidates = [
        ref
        for ref in scan.references.values()
        if (dist := distribution_of(ref.module)) in allowed_dists and judge(ref.module, ref.name, allowed_dists).allowed
    ]
    if not candidates:
        return
    dists = sorted({distribution_of(ref.module) or "" for ref in candidates})
    result = probe([(ref.module, ref.name) for ref in candidates], dists, inputs.probe_python)
    versions = result.versions
    comparable = set()
    for dist in dists:
        entry = layer.get(dist)
        wanted = pinned_version(entry)
        if wanted is not None and versions.get(dist) == wanted:
            comparable.add(dist)
        else:
            check.note(
                f"class-path check skipped for {dist}: {inputs.probe_python} has {dist} "
                f"{versions.get(dist) or '(not installed)'}, {layer.display} pins {wanted or '(nothing exact)'}"
            )
    for path, why in sorted(result.missing.items()):
        dist = distribution_of(path) or "?"
        if dist not in comparable:
            continue
        version = versions.get(dist)
        check.error(
            f"{path} does not exist in {dist} {version} (the runtime's version): unpickling fails ({why})",
            "retrain with the training lock so the model only uses classes of the runtime's versions",
        )
        statuses[dist] = "FAIL"
