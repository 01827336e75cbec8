"""Where every command reads and writes: one place, so outputs always land under build/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = REPO_ROOT / "ci" / "policy" / "lambda_runtimes.json"


@dataclass(frozen=True)
class BuildPaths:  # one build tree: the CLI's --build-dir and --cache-dir choose it
    build: Path
    cache: Path

    @property
    def reports(self) -> Path:
        return self.build / "reports"

    @property
    def wheel_cache(self) -> Path:
        return self.cache / "wheels"

    @property
    def unpacked_layers(self) -> Path:
        return self.cache / "unpacked-layers"

    @property
    def layer_zip(self) -> Path:
        return self.build / "layer.zip"

    @property
    def function_zip(self) -> Path:
        return self.build / "function.zip"

    @property
    def layer_tree(self) -> Path:
        """The installed and pruned layer before zipping (holds python/)."""
        return self.build / "layer"

    @property
    def model_dir(self) -> Path:
        return self.build / "model"

    @property
    def model(self) -> Path:
        return self.model_dir / "model.joblib"

    @property
    def model_manifest(self) -> Path:
        return self.model_dir / "model.json"

    def report(self, name: str) -> Path:
        return self.reports / f"{name}.json"


def inside(path: Path, *roots: Path) -> bool:
    """Whether `path`, symlinks and '..' resolved, lies under one of `roots`: a configured path never leaves them."""
    return any(path.resolve().is_relative_to(root.resolve()) for root in roots)


# [lock] files that older pipeline.toml files lack, and their defaults (ci/config_sections.py types them).
LOCK_FILE_DEFAULTS = {
    "pipeline_in": "requirements-pipeline.in",
    "pipeline_lock": "requirements-pipeline.txt",
    "bootstrap_lock": "requirements-bootstrap.txt",
}
