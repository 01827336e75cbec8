"""Real model bundles for the pin checks: made with this environment's scikit-learn, or with
other versions in a throwaway virtual environment cached under build/cache/pins-fixtures/.

The bundles follow the training contract: joblib dump of {"sklearn_model", "feature_names",
"metadata"} plus a model.json manifest with the artifact's sha256 and the versions that made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ci.paths import REPO_ROOT

FIXTURE_CACHE = REPO_ROOT / "build" / "cache" / "pins-fixtures"
INDEX_URL = "https://pypi.org/simple"
# The foreign environment is installed from this hashed lock (pins-foreign.in says how to recompile it);
# its digest is part of the fixture's key, and of the CI cache key that restores build/cache/pins-fixtures.
FOREIGN_LOCK = Path(__file__).resolve().parent / "pins-foreign.txt"

# A newer stack than the layer lock: scikit-learn 1.5 with numpy 2 (wheels exist for cp311 to cp313).
FOREIGN_VERSIONS = {
    "scikit-learn": "1.5.2",
    "numpy": "2.1.3",
    "scipy": "1.14.1",
    "pandas": "2.2.3",
    "joblib": "1.4.2",
}

# Runs inside the environment that trains: here or in the throwaway one. Writes, in argv[1]:
# model.joblib (+ model.json), model-z3.joblib (compress=3, + model-z3.json) and threshold.joblib,
# a scikit-learn >= 1.5 class (FixedThresholdClassifier) when that version has it.
TRAIN_SCRIPT = r"""
import hashlib, importlib.metadata, json, platform, sys
from pathlib import Path
import joblib, numpy as np, pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
features = ["days_since_review", "reviews", "lapses"]
X = pd.DataFrame({
    "days_since_review": rng.exponential(5.0, 300),
    "reviews": rng.integers(1, 20, 300).astype(float),
    "lapses": rng.integers(0, 5, 300).astype(float),
})
p = np.exp(-X.days_since_review / (1.0 + X.reviews - 0.5 * X.lapses).clip(lower=0.5))
y = (rng.random(300) < p).astype(int)
# the estimator training makes (training/model.py), so a bundle of the layer's versions is all allow-listed
model = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=4, random_state=7).fit(X, y)
versions = {"python": platform.python_version()}
for dist in ("scikit-learn", "numpy", "scipy", "joblib", "pandas"):
    versions[dist] = importlib.metadata.version(dist)
bundle = {"sklearn_model": model, "feature_names": features, "metadata": {"rows": 300, "seed": 7}}

def dump(name, obj, compress=0):
    path = out / f"{name}.joblib"
    joblib.dump(obj, path, compress=compress)
    manifest = {
        "artifact": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "versions": versions,
        "training_data_sha256": "0" * 64,
        "seed": 7,
        "feature_names": features,
        "metrics": {},
    }
    (out / f"{name}.json").write_text(json.dumps(manifest, indent=2))

dump("model", bundle)
dump("model-z3", bundle, compress=3)
try:
    from sklearn.model_selection import FixedThresholdClassifier
except ImportError:
    pass
else:
    tuned = FixedThresholdClassifier(LogisticRegression(), threshold=0.4).fit(X, y)
    dump("threshold", {"sklearn_model": tuned, "feature_names": features, "metadata": {}})
"""


@dataclass(frozen=True)
class Bundle:
    model: Path
    manifest: Path

    def manifest_data(self) -> dict:
        return json.loads(self.manifest.read_text())


def bundle(directory: Path, name: str) -> Bundle:
    return Bundle(directory / f"{name}.joblib", directory / f"{name}.json")


def script_key() -> str:
    return hashlib.sha256(TRAIN_SCRIPT.encode()).hexdigest()[:10]


@contextlib.contextmanager
def exclusive(cache: Path) -> Iterator[None]:
    """One builder at a time: test workers (pytest-xdist) share the cache and would remove each other's work."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def train_here(cache: Path = FIXTURE_CACHE) -> Path:
    """Bundles trained with this environment's (the layer lock's) versions, cached by those versions."""
    with exclusive(cache):
        return _train_here(cache)


def _train_here(cache: Path) -> Path:
    from importlib.metadata import version

    out = cache / f"local-{foreign_key({name: version(name) for name in FOREIGN_VERSIONS})}" / "out"
    if not (out.parent / ".complete").is_file():
        shutil.rmtree(out.parent, ignore_errors=True)
        subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(out)], check=True, capture_output=True, text=True)
        (out.parent / ".complete").write_text("ok\n")
    return out


def foreign_key(versions: dict[str, str] = FOREIGN_VERSIONS, lock: Path | None = None) -> str:
    """Directory name of a fixture: the versions, the Python, the training script's (and the lock's) digest."""
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    parts = [*(f"{name}{version}" for name, version in sorted(versions.items())), py, script_key(), "pyc"]
    if lock is not None:
        parts.append(hashlib.sha256(lock.read_bytes()).hexdigest()[:10])
    return "-".join(parts)


def usable(python: Path, versions: dict[str, str]) -> bool:
    """A restored environment is used only if its interpreter runs and has exactly `versions` (never blindly)."""
    probe = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    try:
        result = subprocess.run([str(python), "-c", probe, *versions], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return result.returncode == 0 and json.loads(result.stdout) == versions


def train_foreign(
    versions: dict[str, str] = FOREIGN_VERSIONS, cache: Path = FIXTURE_CACHE, lock: Path = FOREIGN_LOCK
) -> Path:
    """Bundles trained in a throwaway venv from the hashed `lock`, built once and kept under `cache`/<key>/."""
    with exclusive(cache):
        return _train_foreign(versions, cache, lock)


def _train_foreign(versions: dict[str, str], cache: Path, lock: Path) -> Path:
    root = cache / foreign_key(versions, lock)
    stamp = root / ".complete"
    out = root / "out"
    venv = root / "venv"
    python = venv / "bin" / "python"
    if stamp.is_file() and (out / "model.joblib").is_file() and usable(python, versions):
        return out
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is in requirements-pipeline.txt: run `make venv-dev`"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1"}
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    # Bytecode now: the pins probe asks this environment with `python -B` (it never writes any), so
    # without it every probe compiled scikit-learn, SciPy and pandas from source again (~5 s of CPU).
    install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), "--index-url", INDEX_URL]
    subprocess.run(
        [*install, "--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(lock)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    subprocess.run([str(python), "-c", TRAIN_SCRIPT, str(out)], check=True, capture_output=True, text=True)
    stamp.write_text(json.dumps(versions) + "\n")
    return out


def write_manifest(model: Path, manifest: Path, versions: dict[str, str], sha256: str | None = None) -> Bundle:
    """A manifest of the contract's shape for `model`; `sha256` overrides the real digest."""
    manifest.write_text(
        json.dumps(
            {
                "artifact": model.name,
                "sha256": sha256 or hashlib.sha256(model.read_bytes()).hexdigest(),
                "versions": versions,
                "training_data_sha256": "0" * 64,
                "seed": 1,
                "feature_names": [],
                "metrics": {},
            }
        )
    )
    return Bundle(model, manifest)


def edited_lock(source: Path, target: Path, old: str, new: str) -> tuple[Path, int]:
    """Copy a committed lock with one requirement line replaced; returns the file and that line's number."""
    lines = source.read_text().splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if line.startswith(old):
            lines[number - 1] = line.replace(old, new, 1)
            target.write_text("".join(lines))
            return target, number
    raise AssertionError(f"{old!r} not found in {source}")


def removed_from_lock(source: Path, target: Path, name: str) -> Path:
    """Copy a committed lock without `name`'s entry (its requirement line, hashes and comments)."""
    out: list[str] = []
    skipping = False
    for line in source.read_text().splitlines(keepends=True):
        if line.startswith(f"{name}=="):
            skipping = True
            continue
        if skipping and line.startswith((" ", "\t")):
            continue
        skipping = False
        out.append(line)
    target.write_text("".join(out))
    return target


@pytest.fixture(scope="session")
def local_bundles() -> Path:
    """Bundles trained with this environment's versions (those of the layer lock)."""
    return train_here()


@pytest.fixture(scope="session")
def foreign_bundles() -> Path:
    """Bundles trained with scikit-learn 1.5 + numpy 2 in a cached throwaway venv."""
    return train_foreign()
