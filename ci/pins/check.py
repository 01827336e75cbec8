"""`python -m ci pins` and the model precondition: the model was pickled by exactly the library versions that will
unpickle it, and references only handler/model_globals.txt's pairs; nothing is unpickled (scan.py reads it)."""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from collections.abc import Collection
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker

from ci.errors import CheckFailedError, PipelineError
from ci.lock import lockfile
from ci.lock.lockfile import LockFile, Pin, display_path
from ci.pins.scan import PickleScan, read_container, scan_stream
from ci.reports import sha256_file
from ci.tables import text_table
from handler.model_globals import ALLOWED_GLOBALS_FILE, AllowListError, allowed_globals

# Top-level module -> the distribution that installs it.
PACKAGES = {"sklearn": "scikit-learn", "numpy": "numpy", "scipy": "scipy", "joblib": "joblib", "pandas": "pandas"}
# Distributions whose objects end up in every scikit-learn model pickle.
CORE_DISTRIBUTIONS = ("scikit-learn", "numpy", "scipy", "joblib")
ALLOW_LIST = "handler/model_globals.txt"
# Standard-library helpers an ordinary pickle of another library version uses (numpy 2 spells bytes so).
PICKLE_HELPERS = ("_codecs", "copyreg")
NEVER_LOAD = "never load or deploy this artifact: retrain it (`python -m training`) and check where it came from"
RETRAIN = (
    "retrain with the training lock installed: `pip install --require-hashes -r {training}` then `python -m training`"
)
_LOCK_COLUMNS = ("package", "training lock", "layer lock (runtime)", "model manifest", "status")
_MODEL_COLUMNS = ("package", "training (manifest)", "runtime (layer lock)", "model (pickle scan)", "status")
INSTALLED_COLUMNS = ("package", "training lock", "installed here", "", "status")


def distribution_of(module: str) -> str | None:
    return PACKAGES.get(module.split(".", 1)[0])


def model_allow_list() -> frozenset[tuple[str, str]]:
    """The committed allow-list; a malformed file stops the pipeline rather than widening anything."""
    try:
        return allowed_globals(ALLOWED_GLOBALS_FILE)
    except AllowListError as exc:
        raise PipelineError(str(exc), f"every line of {ALLOW_LIST} is 'module qualname'") from exc


def judge(
    module: str, name: str, allowed_packages: Collection[str], allowed: frozenset[tuple[str, str]] | None = None
) -> str | None:
    if (module, name) not in (model_allow_list() if allowed is None else allowed):
        return f"'{module} {name}' is not in {ALLOW_LIST}, the exact globals a model may reference"
    dist = distribution_of(module)
    if dist is not None and dist not in allowed_packages:
        return f"{dist} is not in the runtime lock, so the runtime cannot import {module}"
    return None


def read_lock(path: Path, display: str | None = None) -> LockFile:
    lock = lockfile.read_lock(path, display)  # a missing lock stops there, naming its path and `python -m ci lock`
    for pin in lock.entries:
        if pin.requirement is None:
            raise PipelineError(
                f"{lock.display}:{pin.line}: {pin.text!r} is not a requirement ({pin.error})",
                "regenerate the lock with `python -m ci lock`",
            )
    return lock


def pinned_version(pin: Pin | None) -> str | None:
    """The exact version when the entry is a single `==` pin without wildcard, else None."""
    return pin.version if pin is not None and pin.operator == "==" else None


def why_not_pinned(pin: Pin) -> str:
    if not pin.specifiers:
        return "is not pinned (no version)" if not pin.url else f"is a URL ({pin.url}), not a version pin"
    if any("*" in item.version for item in pin.specifiers):
        return f"uses a wildcard ({pin.specifier}), not an exact `==` pin"
    operators = ", ".join(f"`{op}`" for op in sorted({item.operator for item in pin.specifiers}))
    return f"uses {operators} ({pin.specifier}), not an exact `==` pin"


@dataclass
class Finding:
    severity: str  # error | warning | note
    message: str
    fix: str = ""
    file: str | None = None  # repository-relative lock the finding is about, and its 1-based line
    line: int | None = None


class UnsafeModelError(CheckFailedError):
    """The static scan refuses the model: nothing may unpickle it."""


def allowed_distributions(layer: LockFile | None) -> set[str]:
    """The model's libraries the runtime ships (all of them when no lock is at hand)."""
    return {dist for dist in PACKAGES.values() if layer is None or layer.get(dist) is not None}


def refusals(scan: PickleScan, layer: LockFile | None) -> list[Finding]:
    """A name outside the allow-list or an unreadable part; under another scikit-learn than `layer`'s, as drift."""
    allowed = allowed_distributions(layer)
    runtime_sklearn = pinned_version(layer.get("scikit-learn")) if layer is not None else None
    recorded = sorted(set(scan.sklearn_versions) - {runtime_sklearn}) if runtime_sklearn else []
    found = []
    for ref in sorted(scan.references.values(), key=lambda r: r.path):
        refused = judge(ref.module, ref.name, allowed)
        if refused is None:
            continue
        how = "called when the pickle is loaded" if ref.called else "imported when the pickle is loaded"
        via = f" via {ref.via}" if ref.via else ""
        ordinary = (
            distribution_of(ref.module) is not None or ref.module in PICKLE_HELPERS or _sklearn_relative(ref.module)
        )
        if recorded and ordinary and (ref.module, ref.name) not in model_allow_list():
            trained = ", ".join(recorded)
            message = (
                f"references {ref.path}{via} ({how}), not in {ALLOW_LIST}: the model was pickled by "
                f"scikit-learn {trained} and the runtime has scikit-learn {runtime_sklearn} (version drift)"
            )
            fix = (
                f"retrain with the runtime's versions (`python -m training` in the training lock's environment), "
                f"or move the layer's pin to {trained} (`python -m ci lock --upgrade scikit-learn`) and retrain"
            )
        else:
            message = f"references {ref.path}{via} ({how}): not allowed — {refused}"
            fix = "never deploy this artifact: rebuild it from the training code and check where it came from"
        found.append(Finding("error", message, fix))
    fix = "never deploy this artifact; retrain the model"
    return found + [Finding("error", f"cannot be read statically: {item}", fix) for item in scan.unresolved]


def _sklearn_relative(module: str) -> bool:
    """scikit-learn >= 1.4's Cython classes pickle a package-relative module ("_loss" for sklearn._loss)."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    top = module.split(".", 1)[0]
    if spec is None or spec.origin is None or not top.startswith("_"):
        return False
    package = Path(spec.origin).parent
    return (package / top).is_dir() or any(package.glob(f"{top}.*"))


def require_safe_model(model: Path, layer_lock: Path | None = None) -> str:
    """Scan `model` statically; the sha256 of the bytes scanned, or UnsafeModelError."""
    try:
        raw = model.read_bytes()
    except OSError as exc:
        raise PipelineError(f"model {model} cannot be read ({exc})", "train it: `python -m training`") from exc
    layer = read_lock(layer_lock) if layer_lock is not None and layer_lock.is_file() else None
    try:
        scan = scan_stream(read_container(model, raw)[1])
    except PipelineError as exc:
        raise UnsafeModelError(f"model {model} refused by the static scan: {exc.problem}", NEVER_LOAD) from exc
    found = refusals(scan, layer)
    if found:
        more = f" (and {len(found) - 1} more; `python -m ci pins` lists them)" if len(found) > 1 else ""
        raise UnsafeModelError(f"model {model} refused by the static scan: {found[0].message}{more}", NEVER_LOAD)
    return hashlib.sha256(raw).hexdigest()


@dataclass
class Row:
    package: str
    training: str
    runtime: str
    model: str
    status: str  # ok | FAIL | warn | -


@dataclass
class CheckResult:
    name: str
    title: str
    columns: tuple[str, str, str, str, str]
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not any(finding.severity == "error" for finding in self.findings)

    def add(self, severity: str, message: str, fix: str = "", file: str | None = None, line: int | None = None) -> None:
        self.findings.append(Finding(severity, message, fix, file, line))


@dataclass(frozen=True)
class PinsInputs:
    training_lock: Path
    layer_lock: Path
    model: Path
    manifest: Path
    target_python: str  # the Lambda runtime's Python, e.g. "3.11"
    root: Path  # paths in messages are shown relative to it
    installed: bool = False
    shown_model: Path | None = None  # how messages name the model when `model` is its snapshot
    probe_python: str = sys.executable  # the environment asked whether referenced classes exist
    deployed_model: Path | None = None  # what deploy would upload (build/model/model.joblib)


@dataclass
class PinsResult:
    checks: list[CheckResult]
    scan: PickleScan | None
    model_info: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checks": {check.name: {"passed": check.passed, **asdict(check)} for check in self.checks},
            "model": self.model_info,
            "scan": self.scan.to_dict() if self.scan else None,
        }


_PROBE = r"""
import importlib.metadata, json, pkgutil, re, sys
versions = {}
for found in importlib.metadata.distributions():  # in sys.path order: the first of a name is the one imported
    versions.setdefault(re.sub(r"[-_.]+", "-", found.metadata["Name"] or "").lower(), found.version)
missing = {}
for module, name in json.load(sys.stdin):
    try:
        pkgutil.resolve_name(module + ":" + name)
    except Exception as exc:
        missing[module + "." + name] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps({"versions": versions, "missing": missing}))
"""


@functools.lru_cache(maxsize=32)
def probe(names: tuple[tuple[str, str], ...], python: str) -> tuple[dict[str, str], dict[str, str]]:
    """The versions installed in `python`'s environment and why `names` do not resolve there; cached per run."""
    request = json.dumps(names)
    completed = subprocess.run(
        [python, "-I", "-B", "-c", _PROBE], input=request, capture_output=True, text=True, timeout=300, check=False
    )
    if completed.returncode != 0:
        raise PipelineError(
            f"probing {python} for the model's classes failed: {completed.stderr.strip()[-800:]}",
            "check that the environment imports (make venv)",
        )
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    return data["versions"], data["missing"]


def pinned(entry: Pin | None) -> str:
    return "(missing)" if entry is None else pinned_version(entry) or entry.specifier or "(unpinned)"


def check_locks(training: LockFile, layer: LockFile, model: "_ModelCheck") -> CheckResult:
    check = CheckResult("locks", "Training lock vs layer lock", _LOCK_COLUMNS)
    referenced = model.referenced
    wanted = [*CORE_DISTRIBUTIONS, *sorted(referenced.keys() - set(CORE_DISTRIBUTIONS))]
    if "pandas" not in wanted and training.get("pandas") and layer.get("pandas"):
        wanted.append("pandas")  # shipped and trained with: its version matters for anything pandas produced
    for dist in wanted:
        t_entry, r_entry = training.get(dist), layer.get(dist)
        why = f" (the model references {referenced[dist]})" if dist in referenced.keys() - CORE_DISTRIBUTIONS else ""
        before = len(check.findings)
        for lock, entry in ((training, t_entry), (layer, r_entry)):
            if entry is None:
                check.add(
                    "error",
                    f"{lock.display} has no entry for {dist}{why}: its version at training and at runtime "
                    "cannot be proven equal",
                    f"add {dist} to the .in file next to {lock.display} and run `python -m ci lock`",
                    lock.display,
                )
            elif pinned_version(entry) is None:
                check.add(
                    "error",
                    f"{lock.display}:{entry.line}: {entry.text} {why_not_pinned(entry)}{why}",
                    f"pin it exactly ({dist}==VERSION) with `python -m ci lock`",
                    lock.display,
                    entry.line,
                )
        if len(check.findings) == before and t_entry and r_entry and pinned_version(t_entry) != pinned_version(r_entry):
            check.add(
                "error",
                f"{dist} {pinned_version(t_entry)} in {training.display}:{t_entry.line} != "
                f"{dist} {pinned_version(r_entry)} in {layer.display}:{r_entry.line}: the model would be pickled "
                "by one version and unpickled by another",
                "constrain the training lock to the layer lock (-c) and run `python -m ci lock`",
                training.display,
                t_entry.line,
            )
        status = "ok" if len(check.findings) == before else "FAIL"
        check.rows.append(Row(dist, pinned(t_entry), pinned(r_entry), model.versions.get(dist, "-"), status))
    return check


class _ModelCheck:
    """Reads the model (statically) and its manifest, then fills the model check's findings and table cells."""

    def __init__(self, layer: LockFile, inputs: PinsInputs) -> None:
        self.check = CheckResult("model", "Model artifact vs layer lock (static scan, never unpickled)", _MODEL_COLUMNS)
        self.layer = layer
        self.inputs = inputs
        self.retrain = RETRAIN.format(training=display_path(inputs.training_lock, inputs.root))
        self.statuses: dict[str, str] = {}  # package -> "FAIL"
        self.model_display = display_path(inputs.shown_model or inputs.model, inputs.root)
        self.manifest_display = display_path(inputs.manifest, inputs.root)
        self.artifact_sha256: str | None = None
        self.compression: str | None = None
        self.scan: PickleScan | None = None
        self.manifest: dict[str, Any] | None = None
        if inputs.model.is_file():
            raw = inputs.model.read_bytes()
            self.artifact_sha256 = hashlib.sha256(raw).hexdigest()
            try:
                self.compression, stream = read_container(inputs.model, raw)
                self.scan = scan_stream(stream)
            except PipelineError as exc:
                self.check.add("error", exc.problem, exc.fix)
        else:
            self.check.add("error", f"model artifact {self.model_display} not found", "train it: `python -m training`")
        if inputs.manifest.is_file():
            try:
                loaded = json.loads(inputs.manifest.read_text())
                if not isinstance(loaded, dict):
                    raise ValueError("not a JSON object")  # noqa: TRY004, TRY301  (one handler for both)
                self.manifest = loaded
            except ValueError as exc:
                self.check.add("error", f"{self.manifest_display} is not a JSON object ({exc})", "retrain the model")
        else:
            self.check.add(
                "error",
                f"model manifest {self.manifest_display} not found",
                "train with `python -m training`, which writes model.json next to model.joblib",
            )
        versions = (self.manifest or {}).get("versions")
        self.versions = {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}
        # The table's "model (pickle scan)" column; check_scan says more for scikit-learn and numpy.
        self.column: dict[str, str] = dict.fromkeys(PACKAGES.values(), "not referenced") if self.scan else {}
        self.referenced: dict[str, str] = {}  # distribution -> the first name the pickle references from it
        for path, ref in sorted(self.scan.references.items()) if self.scan else []:
            if dist := distribution_of(ref.module):
                self.referenced.setdefault(dist, path)
                self.column[dist] = "referenced"

    def fail(self, package: str, message: str, fix: str) -> None:
        self.check.add("error", message, fix)
        self.statuses[package] = "FAIL"

    def run(self) -> CheckResult:
        self.check_artifact()
        # What the pickle itself says comes first: it cannot be edited to agree, a manifest can.
        if self.scan is not None:
            self.check_scan(self.scan)
        names = ["python", *CORE_DISTRIBUTIONS]
        names += sorted((self.versions.keys() | self.referenced.keys()) - set(names))
        for name in names:
            if self.manifest is not None and (name == "python" or name in PACKAGES.values()):
                self.check_manifest_version(name, self.versions.get(name))
            runtime = self.inputs.target_python if name == "python" else pinned(self.layer.get(name))
            recorded, scanned = self.versions.get(name, "-"), self.column.get(name, "-")
            status = self.statuses.get(name, "ok" if recorded != "-" or scanned != "-" else "-")
            self.check.rows.append(Row(name, recorded, runtime, scanned, status))
        return self.check

    def check_artifact(self) -> None:
        """The manifest must describe the bytes scanned, and so must the deployed model: pins.json vouches for it."""
        if self.artifact_sha256 is None:
            return
        recorded = (self.manifest or {}).get("sha256")
        if self.manifest is not None and recorded != self.artifact_sha256:
            self.check.add(
                "error",
                f"{self.manifest_display} records sha256 {recorded} but {self.model_display} has sha256 "
                f"{self.artifact_sha256}: the manifest does not describe this artifact",
                "retrain (`python -m training`) so model.joblib and model.json are written together; "
                "never copy one without the other",
            )
        name = (self.manifest or {}).get("artifact")
        if name is not None and name != Path(self.model_display).name:
            self.check.add(
                "warning",
                f"{self.manifest_display} names artifact {name!r}, but the scanned file is {self.model_display}",
            )
        deployed = self.inputs.deployed_model
        if deployed is not None and deployed.is_file() and sha256_file(deployed) != self.artifact_sha256:
            self.check.add(
                "error",
                f"the scanned artifact {self.model_display} is not {display_path(deployed, self.inputs.root)}, "
                "which deploy would upload and this report would vouch for",
                "scan the artifact that will be deployed (omit --model) or pass a separate --build-dir",
            )

    def check_manifest_version(self, name: str, recorded: str | None) -> None:
        manifest, target_python = self.manifest_display, self.inputs.target_python
        if recorded is None:
            what = "python version" if name == "python" else f"version for {name}"
            self.fail(name, f"{manifest} records no {what}", self.retrain)
        elif name == "python" and ".".join(recorded.split(".")[:2]) != target_python:
            self.fail(
                name,
                f"python {recorded} in {manifest} != the Lambda runtime's Python {target_python}",
                f"train with Python {target_python} (the target in pipeline.toml)",
            )
        elif name != "python":
            entry = self.layer.get(name)
            runtime = pinned_version(entry)
            if entry is not None and runtime is not None and recorded != runtime:  # else the locks check says why
                self.fail(
                    name,
                    f"{name} {recorded} in {manifest} != {name} {runtime} in {self.layer.display}:{entry.line}: "
                    "the model was trained with another version than the layer ships",
                    self.retrain,
                )

    def check_scan(self, scan: PickleScan) -> None:
        sklearn_runtime = pinned_version(self.layer.get("scikit-learn"))
        found = scan.sklearn_versions
        modules = {ref.module for ref in scan.references.values()}
        self.column["scikit-learn"] = ", ".join(sorted(found)) or "(none recorded)"
        for version, owners in sorted(found.items()):
            if sklearn_runtime is not None and version != sklearn_runtime:
                shown = ", ".join(sorted(set(owners))[:3]) + (" ..." if len(set(owners)) > 3 else "")
                self.fail(
                    "scikit-learn",
                    f"_sklearn_version {version} in the model ({shown}) != scikit-learn {sklearn_runtime} in "
                    f"{self.layer.display}: scikit-learn {sklearn_runtime} would unpickle estimators "
                    f"written by {version}",
                    self.retrain,
                )
        manifest_sklearn = self.versions.get("scikit-learn")
        if manifest_sklearn and found and set(found) != {manifest_sklearn}:
            self.fail(
                "scikit-learn",
                f"{self.manifest_display} says scikit-learn {manifest_sklearn}, but the pickled estimators record "
                f"{', '.join(sorted(found))}: the manifest does not describe how this model was made",
                self.retrain,
            )
        if not found and any(distribution_of(m) == "scikit-learn" for m in modules):
            self.check.add("warning", "the pickle references scikit-learn classes but records no _sklearn_version")
        numpy_runtime = pinned_version(self.layer.get("numpy"))
        numpy_major = int(numpy_runtime.split(".")[0]) if numpy_runtime is not None else None
        numpy2 = sorted(m for m in modules if m == "numpy._core" or m.startswith("numpy._core."))
        numpy1 = sorted(m for m in modules if m == "numpy.core" or m.startswith("numpy.core."))
        self.column["numpy"] = "2.x (numpy._core)" if numpy2 else "1.x (numpy.core)" if numpy1 else "(no version marks)"
        if numpy2 and numpy_major is not None and numpy_major < 2:
            for module in numpy2:
                self.fail(
                    "numpy",
                    f"references {module}: pickled under numpy 2.x; numpy {numpy_runtime} in {self.layer.display} "
                    "cannot load it reliably (numpy 1.x before 1.26 has no numpy._core at all, 1.26 only stubs for a "
                    "few of its modules)",
                    self.retrain,
                )
        elif numpy1 and numpy_major is not None and numpy_major >= 2:
            self.check.add(
                "warning",
                f"references {', '.join(numpy1)}: pickled under numpy 1.x; numpy {numpy_runtime} loads it only through "
                "its deprecated numpy.core aliases",
                self.retrain,
            )
        self.check.findings.extend(refusals(scan, self.layer))
        self.check_existence(scan)

    def check_existence(self, scan: PickleScan) -> None:
        """Does each referenced name exist in the runtime's libraries? (Only where the probe has the pinned version.)"""
        allowed_dists = allowed_distributions(self.layer)
        names = sorted(
            (ref.module, ref.name)
            for ref in scan.references.values()
            if distribution_of(ref.module) in allowed_dists and judge(ref.module, ref.name, allowed_dists) is None
        )
        if not names:
            return
        dists = sorted({distribution_of(module) or "" for module, _ in names})
        python = self.inputs.probe_python
        versions, missing = probe(tuple(names), python)
        for dist in dists:
            wanted, have = pinned_version(self.layer.get(dist)), versions.get(dist)
            if wanted is None or have != wanted:
                self.check.add(
                    "note",
                    f"class-path check skipped for {dist}: {python} has {dist} {have or '(not installed)'}, "
                    f"{self.layer.display} pins {wanted or '(nothing exact)'}",
                )
                continue
            for path, why in sorted(missing.items()):
                if distribution_of(path) == dist:
                    self.fail(
                        dist,
                        f"{path} does not exist in {dist} {have} (the runtime's version): unpickling fails ({why})",
                        "retrain with the training lock so the model only uses classes of the runtime's versions",
                    )


def check_installed(training: LockFile, target_python: str) -> CheckResult:
    check = CheckResult("installed", f"Installed environment ({sys.executable}) vs training lock", INSTALLED_COLUMNS)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    # The training lock is resolved for the target's Python, and training pickles with this interpreter.
    check.rows.append(Row("python", target_python, here, "", "ok" if here == target_python else "FAIL"))
    if here != target_python:
        check.add(
            "error",
            f"this environment runs Python {here} ({sys.executable}), the target runtime's is {target_python}: "
            "a model trained here would be pickled by another Python than Lambda's",
            f"recreate the venv with Python {target_python} (`make venv` finds it) and retrain",
        )
    for name, entry in sorted(training.pins.items()):
        wanted = pinned_version(entry)
        if wanted is None or (entry.marker and not Marker(entry.marker).evaluate()):
            continue  # a loose pin is the locks check's to report; a false marker means not installed here
        try:
            have: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != wanted:
            check.add(
                "error",
                f"{name} {wanted} ({training.display}:{entry.line}) is not installed in {sys.prefix}"
                if have is None
                else f"{name} {have} is installed in {sys.prefix}, {training.display}:{entry.line} pins {wanted}",
                f"pip install --require-hashes -r {training.display}",
                training.display,
                entry.line,
            )
        check.rows.append(Row(name, wanted, have or "(missing)", "", "ok" if have == wanted else "FAIL"))
    return check


def run_pins(inputs: PinsInputs) -> PinsResult:
    training = read_lock(inputs.training_lock, display_path(inputs.training_lock, inputs.root))
    layer = read_lock(inputs.layer_lock, display_path(inputs.layer_lock, inputs.root))
    model = _ModelCheck(layer, inputs)
    checks = [check_locks(training, layer, model), model.run()]
    if inputs.installed:
        checks.append(check_installed(training, inputs.target_python))
    else:
        skipped = "not requested (pass --installed where training runs)"
        checks.append(CheckResult("installed", "Installed training environment", INSTALLED_COLUMNS, skipped=skipped))
    model_info = {
        "artifact": model.model_display,
        "manifest": model.manifest_display,
        "sha256": model.artifact_sha256,
        "manifest_sha256": (model.manifest or {}).get("sha256"),
        "compression": model.compression,
    }
    return PinsResult(checks=checks, scan=model.scan, model_info=model_info)


def render(result: PinsResult) -> str:
    parts = []
    for check in result.checks:
        if check.skipped:
            parts.append(f"== {check.title}: skipped\n   {check.skipped}")
            continue
        lines = [f"== {check.title}: {'passed' if check.passed else 'FAILED'}"]
        table = [list(check.columns)] + [list(astuple(row)) for row in check.rows]
        keep = [i for i in range(5) if any(row[i] for row in table)]
        columns = [[row[i] for i in keep] for row in table]
        lines.append(text_table(columns[0], columns[1:], indent="   "))
        for finding in check.findings:
            label = {"error": "FAIL", "warning": "warn", "note": "note"}[finding.severity]
            lines.append(f"   {label}: {finding.message}")
            if finding.fix and finding.severity != "note":
                lines.append(f"         fix: {finding.fix}")
        parts.append("\n".join(lines))
    if (scan := result.scan) is not None:
        parts.append(
            f"scan: protocol {scan.protocol}, {len(scan.references)} referenced names, {scan.arrays} arrays "
            f"({scan.object_arrays} of Python objects, {scan.array_bytes_skipped:,} bytes of array data skipped), "
            f"compression {result.model_info.get('compression')}"
        )
    return "\n\n".join(parts)
