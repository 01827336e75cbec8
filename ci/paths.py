"""Where every command reads and writes: one place, so outputs always land under build/."""

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = REPO_ROOT / "ci" / "policy" / "lambda_runtimes.json"


class Below:  # a BuildPaths attribute: `parts` below its `build` or `cache` root
    def __init__(self, root: str, *parts: str) -> None:
        self.root, self.parts = root, parts

    def __get__(self, paths: "BuildPaths", owner: type["BuildPaths"]) -> Path:
        return Path(getattr(paths, self.root), *self.parts)


@dataclass(frozen=True)
class BuildPaths:  # one build tree: the CLI's --build-dir and --cache-dir choose it
    build: Path
    cache: Path
    reports = Below("build", "reports")
    wheel_cache = Below("cache", "wheels")
    unpacked_layers = Below("cache", "unpacked-layers")
    layer_zip = Below("build", "layer.zip")
    function_zip = Below("build", "function.zip")
    layer_tree = Below("build", "layer")  # the installed and pruned layer before zipping (holds python/)
    model_dir = Below("build", "model")
    model = Below("build", "model", "model.joblib")
    model_manifest = Below("build", "model", "model.json")

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
