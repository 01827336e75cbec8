"""This checkout's model against the base branch's, trained from its `git archive` with this interpreter (so they
differ by code and settings only), as model-report.md. Models are unpickled only through handler.model_store (digest
checked first); a base that cannot be built is an outcome with a reason, since the report only informs."""

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ci.config_sections import TrainingConfig
from ci.errors import PipelineError
from handler.contract import CORRECT, DIFFICULTY, ELAPSED, SEEN, WRONG
from handler.errors import ModelLoadError
from handler.events import parse
from handler.model_store import load as load_model
from handler.predict import recall
from handler.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, ModelSource
from handler.validation import validate
from training.bundle import ARTIFACT, versions

DEFAULT_BRANCHES = ("origin/main", "main")
DEFAULT_TRAINING_LOCK = "training/requirements.txt"
GIT_TIMEOUT_S = 120
TRAINING_TIMEOUT_S = 900
HISTORY_FIX = (
    "fetch the base's history (actions/checkout with `fetch-depth: 0`, or `git fetch origin main`), "
    "or pass --base-ref REF"
)

TRAINED, REUSED, UNCHANGED, UNAVAILABLE, FAILED = "trained", "reused", "unchanged", "unavailable", "failed"


class Base(NamedTuple):
    status: str  # trained | reused (trained earlier for this commit) | unchanged (head model) | unavailable | failed
    ref: str  # the ref as named ("origin/main", "HEAD", a sha), "" when none could be named
    commit: str  # full sha, "" when unresolved
    chosen_by: str  # why this ref: --base-ref, the merge-base, uncommitted training changes
    model_dir: Path | None = None  # None when status is unavailable or failed
    reason: str = ""  # one line: why there is no base model
    fix: str = ""
    training_lock_differs: bool = False  # the base's training lock is not the head's (trained with head's .venv)

    def to_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "model_dir": str(self.model_dir) if self.model_dir else None}


class BaseUnavailableError(PipelineError):
    """No base to compare with: an outcome the report states, not a failure of the command."""


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise BaseUnavailableError(
            "git is not installed: the base branch's code cannot be read", "install git"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise BaseUnavailableError(
            f"`git {' '.join(args)}` took over {GIT_TIMEOUT_S} s", "rerun; check the clone"
        ) from exc


def git_out(root: Path, *args: str) -> str | None:
    found = git(root, *args)
    return found.stdout.decode().strip() if found.returncode == 0 else None


def rev_parse(root: Path, ref: str) -> str | None:
    return git_out(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def resolve(root: Path, given: str | None, watched: list[str]) -> tuple[str, str, str]:
    """(ref, commit, chosen_by) of the base, or BaseUnavailableError naming why not and what to do."""
    if git_out(root, "rev-parse", "--is-inside-work-tree") != "true":
        raise BaseUnavailableError(f"{root} is not a git checkout, so it has no base branch", "run it in a git clone")
    head = rev_parse(root, "HEAD")
    if head is None:
        raise BaseUnavailableError("this clone has no commit yet, so it has no base branch", "commit, then rerun")
    shallow = " (a shallow clone)" if git_out(root, "rev-parse", "--is-shallow-repository") == "true" else ""
    if given:
        if given.startswith("-"):  # git would read it as an option
            raise BaseUnavailableError(f"base ref {given!r} is not a ref name", "name a branch, tag or commit")
        commit = rev_parse(root, given)
        if commit is None:
            raise BaseUnavailableError(f"base ref {given!r} is not in this clone{shallow}", HISTORY_FIX)
        return given, commit, "as --base-ref names it"
    if git_out(root, "status", "--porcelain", "--", *watched):
        return "HEAD", head, "the last commit, since the working tree has uncommitted changes to the training inputs"
    for branch in DEFAULT_BRANCHES:
        if rev_parse(root, branch) is None:
            continue
        merge_base = git_out(root, "merge-base", "HEAD", branch)
        if merge_base is None:
            raise BaseUnavailableError(f"HEAD and {branch} have no common commit in this clone{shallow}", HISTORY_FIX)
        return branch, merge_base, f"the merge-base of HEAD and {branch}"
    raise BaseUnavailableError(
        f"neither {' nor '.join(DEFAULT_BRANCHES)} is in this clone{shallow}",
        "pass --base-ref REF (the branch this change merges into), or fetch it (`git fetch origin main`)",
    )


def extract(root: Path, commit: str, into: Path) -> None:
    archive = git(root, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        problem = archive.stderr.decode(errors="replace").strip().splitlines()
        raise BaseUnavailableError(
            f"`git archive {commit[:12]}` failed: {problem[-1] if problem else 'no output'}", HISTORY_FIX
        )
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")  # refuses links and names that leave `into`


def training_inputs(tree: Path, config_file: Path, training_lock: Path | None = None) -> dict[str, Any]:
    """Everything `python -m training` reads from a tree: its code, [training] and its lock (default: config's)."""
    code = {}
    for path in sorted((tree / "training").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            code[path.relative_to(tree).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        toml = tomllib.loads(config_file.read_text(encoding="utf-8"))
        settings = toml.get("training")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        toml, settings = {}, f"unreadable: {exc}"
    if training_lock is None:
        name = toml["lock"].get("training_lock") if isinstance(toml.get("lock"), dict) else None
        training_lock = tree / (name if isinstance(name, str) else DEFAULT_TRAINING_LOCK)
    lock = hashlib.sha256(training_lock.read_bytes()).hexdigest() if training_lock.is_file() else None
    return {"code": code, "settings": settings, "training_lock": lock}


def trained_here(model_dir: Path) -> bool:
    """A model this command trained earlier for the same commit, with the libraries that pickle it installed now."""
    try:
        manifest = read_manifest(model_dir, "the base model")
    except PipelineError:
        return False
    return manifest.get("versions") == versions() and (model_dir / str(manifest.get("artifact", ARTIFACT))).is_file()


def train(tree: Path, out_dir: Path) -> str | None:
    """`python -m training` of the tree, with this interpreter; its last error line, None when it succeeded."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
    partial = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, "-m", "training", "--out-dir", str(partial)]  # `-m` in tree: its training/ and ci/
    try:
        ran = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=TRAINING_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return f"its training took over {TRAINING_TIMEOUT_S} s"
    if ran.returncode != 0 or not (partial / "model.json").is_file():
        lines = [line.strip() for line in ran.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or [f"exit {ran.returncode}"])[-1]
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return None


def base_model(
    root: Path, work: Path, head_model_dir: Path, config_file: Path, training_lock: Path, given: str | None
) -> Base:
    """The base's model directory: the head's when the training inputs are identical, else trained from the base."""
    ref, commit, chosen_by = "", "", ""
    # What `git status` must show clean for the merge-base to stand for this checkout's training.
    inputs = [os.path.relpath(p, root) if p.is_absolute() else str(p) for p in (config_file, training_lock)]
    try:
        ref, commit, chosen_by = resolve(root, given, ["training", *inputs])
        where = work / commit[:12]
        where.mkdir(parents=True, exist_ok=True)
        with (work / f"{commit[:12]}.lock").open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # a second run for the same base waits, then reuses
            tree, model_dir = where / "src", where / "model"
            extract(root, commit, tree)
            base_inputs = training_inputs(tree, tree / "pipeline.toml")
            head_inputs = training_inputs(root, config_file, training_lock)
            if base_inputs == head_inputs:
                return Base(UNCHANGED, ref, commit, chosen_by, head_model_dir)
            lock_differs = base_inputs["training_lock"] != head_inputs["training_lock"]
            if trained_here(model_dir):
                return Base(REUSED, ref, commit, chosen_by, model_dir, training_lock_differs=lock_differs)
            error = train(tree, model_dir)
    except BaseUnavailableError as exc:
        return Base(UNAVAILABLE, ref or (given or ""), commit, chosen_by, reason=exc.problem, fix=exc.fix)
    if error is None:
        return Base(TRAINED, ref, commit, chosen_by, model_dir, training_lock_differs=lock_differs)
    reason = f"the base's own training failed with this .venv: {error}"
    fix = "compare with another base (--base-ref); training's gate still judges this change's model"
    return Base(FAILED, ref, commit, chosen_by, None, reason, fix, lock_differs)


DAYS = tuple(range(31))  # elapsed days drawn: 0..30
MAX_HISTORIES = 3
SHORT_NAMES = {SEEN: "seen", CORRECT: "correct", WRONG: "wrong", DIFFICULTY: "difficulty"}  # in a history's label
# xychart-beta has no legend: the series get contrasting colours named in the text, and a table of the numbers.
BASE_COLOUR, HEAD_COLOUR = "#1f77b4", "#d62728"  # blue, red
TABLE_DAYS = (1, 7, 30)
TITLE = "## Model: this change against the base branch"
HOW_BUILT = {  # the closing line of a report that has a base
    TRAINED: "trained now from its own code and pipeline.toml with this checkout's .venv",
    REUSED: "trained earlier by this command from its own code with this checkout's .venv (reused)",
    UNCHANGED: "its training inputs (training/, [training], the training lock) equal this checkout's, "
    "so this checkout's model stands for it (not retrained)",
}
LOCK_DIFFERS = (
    " Its training lock differs from this checkout's; both were trained with this checkout's .venv, "
    "so the difference shown is code and settings, not library versions."
)
SAME = 1e-6  # metrics are rounded to 6 decimals by training/metrics.py
METRICS = (
    ("log_loss", "log loss", True, "max_log_loss_ratio"),
    ("roc_auc", "ROC AUC", False, "min_roc_auc"),
    ("mae_true_p", "MAE (vs true p)", True, "max_mae"),
    ("ece", "ECE (calibration)", True, "max_ece"),
)


class Row(NamedTuple):
    key: str
    label: str
    base: float | None
    head: float | None
    delta: float | None  # head - base
    verdict: str  # better | worse | same | "" (not comparable)
    gate: str  # the threshold as [training] states it, e.g. "<= 0.05"
    limit: float | None  # the threshold in the metric's own units
    head_passes: bool | None


class Curve(NamedTuple):
    label: str  # the history, e.g. "seen 6, correct 4, wrong 1, difficulty 0.4"
    features: dict[str, float]  # without the elapsed days
    base: list[float] | None
    head: list[float] | None


class Comparison(NamedTuple):
    head: dict[str, Any]  # side(): one model as the report shows it
    base: dict[str, Any] | None
    rows: list[Row]
    curves: tuple[Curve, ...] = ()
    curve_note: str = ""  # why a series is missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_model": self.head,
            "base_model": self.base,
            "metrics": [row._asdict() for row in self.rows],
            "curves": {"days": list(DAYS), "histories": [c._asdict() for c in self.curves], "note": self.curve_note},
        }


def read_manifest(model_dir: Path, what: str) -> dict[str, Any]:
    manifest = model_dir / "model.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineError(f"{what}: {manifest} not found", "train it first: `python -m training`") from exc
    except (OSError, ValueError) as exc:
        raise PipelineError(
            f"{what}: {manifest} is not readable JSON ({exc})", "retrain: `python -m training`"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data.get("sha256"):
        raise PipelineError(f"{what}: {manifest} has no metrics or sha256", "retrain: `python -m training`")
    return data


def side(manifest: dict[str, Any]) -> dict[str, Any]:
    checks = manifest.get("checks")
    monotonic = checks.get("monotonic") if isinstance(checks, dict) else None
    recorded = monotonic if isinstance(monotonic, dict) else None
    return {"sha256": str(manifest["sha256"]), "metrics": manifest["metrics"], "monotonic": recorded}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def rows(head: dict[str, Any], base: dict[str, Any] | None, settings: TrainingConfig) -> list[Row]:
    """Each metric against the base and [training]'s threshold (log loss: a fraction of the constant baseline's)."""
    found = []
    for key, label, lower_is_better, setting in METRICS:
        now = _number(head.get(key))
        before = _number(base.get(key)) if base is not None else None
        delta = None if now is None or before is None else round(now - before, 6)
        if delta is None:
            verdict = ""
        elif abs(delta) < SAME:
            verdict = "same"
        else:
            verdict = "better" if (delta < 0) == lower_is_better else "worse"
        threshold = float(getattr(settings, setting))
        limit: float | None = threshold
        gate = f"<= {threshold}" if lower_is_better else f">= {threshold}"
        passes = None if now is None else now <= threshold if lower_is_better else now >= threshold
        if key == "log_loss":  # strictly below a fraction of the constant baseline's
            baseline = _number(head.get("baseline_log_loss"))
            limit = None if baseline is None else round(threshold * baseline, 6)
            gate = (f"< {limit:.4f}" if limit is not None else "< ?") + f" ({threshold} × baseline)"
            passes = None if now is None or limit is None else now < limit
        found.append(Row(key, label, before, now, delta, verdict, gate, limit, passes))
    return found


def histories(events_dir: Path, feature_names: list[str]) -> list[dict[str, float]]:
    """Distinct learner histories (the features but elapsed days) of the committed events that answer 200."""
    found: list[dict[str, float]] = []
    for path in sorted(events_dir.glob("*.json")):
        try:
            case = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(case, dict) or (case.get("expect") or {}).get("status") != 200:
                continue
            payload = parse(case.get("event"), DEFAULT_MAX_BODY_BYTES).payload
            rows = validate(payload, feature_names, DEFAULT_MAX_BATCH).instances
        except Exception:  # noqa: BLE001, S112  # an event this model cannot read is simply not drawn (smoke judges events)
            continue
        for row in rows:
            history = {name: value for name, value in zip(feature_names, row, strict=True) if name != ELAPSED}
            if history not in found:
                found.append(history)
    return found[:MAX_HISTORIES]


def curve(model: Any | None, history: dict[str, float]) -> list[float] | None:
    if model is None or any(name != ELAPSED and name not in history for name in model.feature_names):
        return None
    rows = np.array([[day if name == ELAPSED else history[name] for name in model.feature_names] for day in DAYS])
    return [round(float(p), 4) for p in recall(model, rows.astype("float64"))]


def load(model_dir: Path, manifest: dict[str, Any]) -> Any:
    artifact = model_dir / str(manifest.get("artifact") or ARTIFACT)
    return load_model(ModelSource(path=str(artifact), s3_uri=None, sha256=str(manifest["sha256"])))


def compare(head_dir: Path, base_dir: Path | None, settings: TrainingConfig, events_dir: Path) -> Comparison:
    head_manifest = read_manifest(head_dir, "this checkout's model")
    base_manifest = read_manifest(base_dir, "the base model") if base_dir is not None else None
    try:
        head_model = load(head_dir, head_manifest)
    except ModelLoadError as exc:
        raise PipelineError(f"this checkout's model cannot be loaded: {exc}", "retrain: `python -m training`") from exc
    base_model, note = None, ""
    if base_dir is not None and base_manifest is not None and base_dir != head_dir:  # the head model: one series
        try:
            base_model = load(base_dir, base_manifest)
        except ModelLoadError as exc:
            note = f"the base model cannot be loaded, so only the head is drawn: {exc}"
    curves = []
    for history in histories(events_dir, head_model.feature_names):
        label = ", ".join(f"{SHORT_NAMES.get(name, name)} {value:g}" for name, value in history.items())
        curves.append(Curve(label, history, curve(base_model, history), curve(head_model, history)))
    base_side = side(base_manifest) if base_manifest else None
    metrics = rows(head_manifest["metrics"], base_manifest["metrics"] if base_manifest else None, settings)
    return Comparison(side(head_manifest), base_side, metrics, tuple(curves), note)


def signed(value: float | None) -> str:
    return "" if value is None else "0" if value == 0 else f"{value:+.4f}"


def shown(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def base_name(base: Base) -> str:
    return f"`{base.ref}` ({base.commit[:7]})" if base.commit else f"`{base.ref}`" if base.ref else "the base"


def verdict(comparison: Comparison, base: Base) -> str:
    fails = ", ".join(row.label for row in comparison.rows if row.head_passes is False)
    gate = f"❌ this model misses [training]'s gate on {fails}" if fails else "✅ this model passes [training]'s gate"
    if base.status == UNCHANGED:
        return f"**Model unchanged from {base_name(base)}**: the training inputs are identical; {gate}."
    if comparison.base is None:
        return f"**No base model to compare with**; {gate}."
    parts = []
    for word in ("better", "worse"):
        if moved := [f"{row.label} ({signed(row.delta)})" for row in comparison.rows if row.verdict == word]:
            parts.append(f"{word} on {', '.join(moved)}")
    change = " and ".join(parts)
    change = f"**{change[0].upper()}{change[1:]}** than the base" if parts else "**Same metrics as the base**"
    return f"{change}; {gate}."


def monotonic_text(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not recorded"
    passed = record.get("passed")
    word = "✅ passed" if passed is True else "❌ failed" if passed is False else "?"
    return f"{word} ({record.get('violations')} violation(s) in {record.get('histories')} histories)"


def metrics_table(comparison: Comparison, with_base: bool) -> list[str]:
    table = [
        ("metric", "base", "this change", "Δ", "change", "gate ([training])"),
        ("---", "---:", "---:", "---:", "---", "---"),
    ]
    for row in comparison.rows:
        mark = "" if row.head_passes is None else (" ✅" if row.head_passes else " ❌")
        table.append((row.label, shown(row.base), shown(row.head), signed(row.delta), row.verdict, row.gate + mark))
    base_check = monotonic_text(comparison.base["monotonic"] if comparison.base else None)
    head_check = monotonic_text(comparison.head["monotonic"])
    table.append(("monotonic in elapsed days", base_check, head_check, "", "", "training's check"))
    columns = range(6) if with_base else (0, 2, 5)
    return ["| " + " | ".join(cells[i] for i in columns) + " |" for cells in table]


def chart(found: Curve) -> list[str]:
    """One history's xychart: the base's curve blue, this change's red (one series when there is no base)."""
    series = [(values, colour) for values, colour in ((found.base, BASE_COLOUR), (found.head, HEAD_COLOUR)) if values]
    lowest = min(min(values) for values, _ in series)
    floor = max(0.0, int(lowest * 10) / 10)
    palette = ", ".join(colour for _, colour in series)
    lines = [
        "```mermaid",
        f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%',
        "xychart-beta",
        f'    title "{found.label}"',
        f'    x-axis "days since the last review" [{", ".join(str(day) for day in DAYS)}]',
        f'    y-axis "p(recall)" {floor:.1f} --> 1',
    ]
    lines += [f"    line [{', '.join(f'{value:.4f}' for value in values)}]" for values, _ in series]
    return [*lines, "```"]


def curve_table(comparison: Comparison, with_base: bool) -> list[str]:
    lines = [
        "| history | " + " | ".join(f"day {day}" for day in TABLE_DAYS) + " |",
        "|---|" + "---:|" * len(TABLE_DAYS),
    ]
    for found in comparison.curves:
        cells = [f"{found.head[day]:.3f}" if found.head else "–" for day in TABLE_DAYS]  # DAYS[day] is day
        if with_base and found.base:
            cells = [f"{found.base[day]:.3f} → {head}" for day, head in zip(TABLE_DAYS, cells, strict=True)]
        lines.append(f"| {found.label} | " + " | ".join(cells) + " |")
    return lines


def render(comparison: Comparison, base: Base) -> str:
    lines = [TITLE, "", verdict(comparison, base), ""]
    if base.status in (UNAVAILABLE, FAILED):
        lines += [f"> ⚠️ base not built: {base.reason}. Fix: {base.fix}.", ""]
    unchanged = base.status == UNCHANGED  # the common case: details folded, the verdict line says it all
    if unchanged:
        lines += ["<details><summary>Metrics and predicted recall (the base's are the same)</summary>", ""]
    lines += [*metrics_table(comparison, comparison.base is not None and not unchanged), ""]
    draw_base = any(found.base is not None for found in comparison.curves)
    if comparison.curves:
        legend = "this change (the base's curves are the same)" if unchanged else "this change"
        if draw_base:
            legend = f"base {base_name(base)} in blue, this change in red"
        first, *others = comparison.curves
        lines += [f"**Predicted recall over {DAYS[-1]} days** for committed histories: {legend}.", ""]
        lines += [*chart(first), "", *curve_table(comparison, draw_base), ""]
        if others:
            lines += [f"<details><summary>The other {len(others)} histories' curves</summary>", ""]
            for found in others:
                lines += [*chart(found), ""]
            lines += ["</details>", ""]
    if comparison.curve_note:
        lines += [f"_{comparison.curve_note}_", ""]
    if unchanged:
        lines += ["</details>", ""]
    if base.status not in (UNAVAILABLE, FAILED):
        lock = LOCK_DIFFERS if base.training_lock_differs else ""
        lines += [f"<sub>Base: {base_name(base)}, {base.chosen_by}; {HOW_BUILT[base.status]}.{lock}</sub>", ""]
    return "\n".join(lines)
