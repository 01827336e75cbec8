"""The base branch's model, trained from its `git archive` with this interpreter (so the models differ by code
and settings only); a base that cannot be built is an outcome with a reason, since the report only informs."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ci.errors import PipelineError

DEFAULT_BRANCHES = ("origin/main", "main")
DEFAULT_TRAINING_LOCK = "training/requirements.txt"
GIT_TIMEOUT_S = 120
TRAINING_TIMEOUT_S = 900
# The libraries whose versions make a pickled model (training/bundle.py VERSIONED): a base model trained
# earlier for the same commit is reused only if this interpreter still has exactly these.
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")
HISTORY_FIX = (
    "fetch the base's history (actions/checkout with `fetch-depth: 0`, or `git fetch origin main`), "
    "or pass --base-ref REF"
)

TRAINED, REUSED, UNCHANGED, UNAVAILABLE, FAILED = "trained", "reused", "unchanged", "unavailable", "failed"


@dataclass(frozen=True)
class Base:
    """What the report compares against. model_dir is None when status is unavailable or failed."""

    status: str  # trained | reused (trained earlier for this commit) | unchanged (head model) | unavailable | failed
    ref: str  # the ref as named ("origin/main", "HEAD", a sha), "" when none could be named
    commit: str  # full sha, "" when unresolved
    chosen_by: str  # why this ref: --base-ref, the merge-base, uncommitted training changes
    model_dir: Path | None = None
    reason: str = ""  # one line: why there is no base model
    fix: str = ""
    training_lock_differs: bool = False  # the base's training lock is not the head's (trained with head's .venv)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_dir": str(self.model_dir) if self.model_dir else None}


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


def rev_parse(root: Path, ref: str) -> str | None:
    found = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return found.stdout.decode().strip() if found.returncode == 0 else None


def resolve(root: Path, given: str | None, watched: list[str]) -> tuple[str, str, str]:
    """(ref, commit, chosen_by) of the base, or BaseUnavailableError naming why not and what to do."""
    inside = git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.decode().strip() != "true":
        raise BaseUnavailableError(f"{root} is not a git checkout, so it has no base branch", "run it in a git clone")
    if rev_parse(root, "HEAD") is None:
        raise BaseUnavailableError("this clone has no commit yet, so it has no base branch", "commit, then rerun")
    is_shallow = git(root, "rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
    shallow = " (a shallow clone)" if is_shallow else ""
    if given:
        if given.startswith("-"):  # git would read it as an option
            raise BaseUnavailableError(f"base ref {given!r} is not a ref name", "name a branch, tag or commit")
        commit = rev_parse(root, given)
        if commit is None:
            raise BaseUnavailableError(f"base ref {given!r} is not in this clone{shallow}", HISTORY_FIX)
        return given, commit, "as --base-ref names it"
    dirty = git(root, "status", "--porcelain", "--", *watched)
    if dirty.returncode == 0 and dirty.stdout.strip():
        head = rev_parse(root, "HEAD") or ""
        return "HEAD", head, "the last commit, since the working tree has uncommitted changes to the training inputs"
    for branch in DEFAULT_BRANCHES:
        if rev_parse(root, branch) is None:
            continue
        merge_base = git(root, "merge-base", "HEAD", branch)
        if merge_base.returncode != 0:
            raise BaseUnavailableError(f"HEAD and {branch} have no common commit in this clone{shallow}", HISTORY_FIX)
        return branch, merge_base.stdout.decode().strip(), f"the merge-base of HEAD and {branch}"
    raise BaseUnavailableError(
        f"neither {' nor '.join(DEFAULT_BRANCHES)} is in this clone{shallow}",
        "pass --base-ref REF (the branch this change merges into), or fetch it (`git fetch origin main`)",
    )


def extract(root: Path, commit: str, into: Path) -> None:
    """The commit's tree, as `git archive` exports it (tracked files only), under `into`."""
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
    """Everything `python -m training` reads from a tree: its code, [training] and the lock it was made for
    (the one `config_file` names when `training_lock` is None)."""
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
    """A model this command trained earlier for the same commit, with the libraries installed now."""
    try:
        manifest = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("versions")
        == {"python": platform.python_version(), **{name: metadata.version(name) for name in MODEL_LIBRARIES}}
        and (model_dir / str(manifest.get("artifact", "model.joblib"))).is_file()
    )


def train(tree: Path, out_dir: Path) -> tuple[bool, str]:
    """`python -m training` of the tree, with this interpreter; (succeeded, its last error line)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
    partial = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        ran = subprocess.run(
            [sys.executable, "-m", "training", "--out-dir", str(partial)],
            cwd=tree,  # `-m` puts the base's tree first on sys.path: its training/ and ci/, not ours
            env=env,
            capture_output=True,
            text=True,
            timeout=TRAINING_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"its training took over {TRAINING_TIMEOUT_S} s"
    if ran.returncode != 0 or not (partial / "model.json").is_file():
        lines = [line.strip() for line in ran.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return False, (errors or lines or [f"exit {ran.returncode}"])[-1]
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return True, ""


def base_model(
    root: Path, work: Path, head_model_dir: Path, config_file: Path, training_lock: Path, given: str | None
) -> Base:
    """The base's model directory: the head's when the training inputs are identical, else trained from the base."""
    ref, commit, chosen_by = "", "", ""
    # What `git status` must show clean for the merge-base to stand for this checkout's training.
    watched = [os.path.relpath(p, root) if Path(p).is_absolute() else p for p in (config_file, training_lock)]
    try:
        ref, commit, chosen_by = resolve(root, given, ["training", *map(str, watched)])
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
            trained, error = train(tree, model_dir)
    except BaseUnavailableError as exc:
        return Base(UNAVAILABLE, ref or (given or ""), commit, chosen_by, reason=exc.problem, fix=exc.fix)
    if not trained:
        return Base(
            FAILED,
            ref,
            commit,
            chosen_by,
            reason=f"the base's own training failed with this .venv: {error}",
            fix="compare with another base (--base-ref); training's gate still judges this change's model",
            training_lock_differs=lock_differs,
        )
    return Base(TRAINED, ref, commit, chosen_by, model_dir, training_lock_differs=lock_differs)
