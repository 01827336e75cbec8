"""The Lambda file-system layout, rebuilt fresh from the exact zips that will be deployed.

build/smoke/opt   <- layer.zip    (Lambda mounts layers at /opt; hard links to its unpacked copy: ci/unpacked_layers.py)
build/smoke/task  <- function.zip (/var/task, the working directory)
build/smoke/model <- the model file (read-only, like a file the handler may not change)
build/smoke/tmp   the only writable directory (/tmp)
build/smoke/control  the harness's own files (logs, trace, recorded write attempts)
The runtime directory (/var/runtime) lives in the cache; see ci/runtime_view.py.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ci import unpacked_layers
from ci.errors import PipelineError
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class SmokeLayout:
    root: Path
    runtime: Path

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def task(self) -> Path:
        return self.root / "task"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def control(self) -> Path:
        return self.root / "control"

    @property
    def read_only(self) -> list[Path]:
        return [self.opt, self.task, self.model_dir, self.runtime]


def make_writable(root: Path) -> None:
    for directory, _dirs, _files in os.walk(root):
        folder = Path(directory)
        folder.chmod(folder.stat().st_mode | stat.S_IWUSR)


def make_read_only(root: Path) -> None:
    """chmod a-w everything below root (root itself ignores it: bootstrap.py enforces it too)."""
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for directory, _dirs, files in os.walk(root):
        folder = Path(directory)
        for name in files:
            path = folder / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~write_bits)
        folder.chmod(folder.stat().st_mode & ~write_bits)


def _unzip(archive: Path, destination: Path) -> None:
    with open_zip(archive, "rebuild it with `python -m ci build`", check_data=False) as zipped:
        zipped.extract_all(destination)  # checks each entry's CRC


def prepare_layout(
    root: Path, runtime: Path, layer_zip: Path, function_zip: Path, model_path: Path, layers: Path
) -> SmokeLayout:
    """Unzip the artifacts into a fresh layout under root and make the package directories read-only.

    `layers`: where layers are kept unpacked by sha256 (ci/unpacked_layers.py); /opt is hard links to the
    copy of this zip, checked against it first, instead of 230 MB written again for every run."""
    layout = SmokeLayout(root=root, runtime=runtime)
    if root.exists():
        make_writable(root)
        shutil.rmtree(root)
    for directory in (layout.task, layout.model_dir, layout.tmp, layout.control):
        directory.mkdir(parents=True)
    unpacked_layers.link_layer(layers, layer_zip, layout.opt)
    _unzip(function_zip, layout.task)
    if not model_path.is_file():
        raise PipelineError(f"model {model_path} not found", "run `python -m training` first")
    shutil.copyfile(model_path, layout.model_dir / model_path.name)
    for directory in layout.read_only:
        make_read_only(directory)
    return layout
