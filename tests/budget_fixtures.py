"""Small real zips for the budget tests: a layer laid out like Lambda's (python/...) and a function."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from config_fixtures import EXT, PYC_TAG

from ci.config import Config, load_config
from ci.paths import BuildPaths


def write_zip(path: Path, files: dict[str, bytes | int], directories: tuple[str, ...] = ()) -> Path:
    """A deflated zip; an int stands for that many incompressible-enough bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory in directories:
            archive.writestr(zipfile.ZipInfo(directory.rstrip("/") + "/"), b"")
        for name, content in files.items():
            data = content if isinstance(content, bytes) else bytes(i * 7919 % 251 for i in range(content))
            archive.writestr(name, data)
    return path


LAYER_FILES: dict[str, bytes | int] = {
    "python/numpy/__init__.py": 4_000,
    f"python/numpy/__pycache__/__init__.{PYC_TAG}.pyc": 3_000,
    f"python/numpy/core/_multiarray_umath.{EXT}": 90_000,
    "python/numpy/core/data.txt": 1_000,
    "python/numpy.libs/libopenblas64_p-r0.so": 120_000,
    "python/numpy-1.26.4.dist-info/METADATA": 500,
    "python/numpy-1.26.4.dist-info/RECORD": b"numpy/__init__.py,,\nnumpy.libs/libopenblas64_p-r0.so,,\n",
    f"python/scipy/special/_ufuncs.{EXT}": 60_000,
    "python/scipy/special/__init__.py": 2_000,
    "python/scipy-1.16.3.dist-info/METADATA": 400,
    "python/six.py": 800,
    f"python/__pycache__/six.{PYC_TAG}.pyc": 700,
    "python/six-1.17.0.dist-info/METADATA": 100,
    "python/orphan/thing.dat": 50,
}

FUNCTION_FILES: dict[str, bytes | int] = {"handler/__init__.py": b"", "handler/app.py": 1_200}

BUILD_REPORT = {
    "format": 1,
    "check": "build",
    "passed": True,
    "rules": {
        "tests": {"files": 120, "bytes": 40_000_000, "paths": ["python/scipy/tests/test_x.py"]},
        "docs": {"files": 3, "bytes": 5_000, "paths": ["python/numpy/doc/a.txt"]},
    },
    "distributions": {
        "numpy": {"version": "1.26.4", "files": 6, "bytes": 0},
        "scipy": {"version": "1.16.3", "files": 3, "bytes": 0},
        "six": {"version": "1.17.0", "files": 2, "bytes": 0},
    },
    "top_level": {"numpy": "numpy", "numpy.libs": "numpy", "scipy": "scipy", "six.py": "six"},
    "bytecode": {"mode": "runtime", "files": 1, "bytes": 3_000},
}


def make_build(
    build: Path,
    layer: dict[str, bytes | int] | None = None,
    function: dict[str, bytes | int] | None = None,
    report: dict[str, object] | None = BUILD_REPORT,
) -> BuildPaths:
    """build/layer.zip, build/function.zip and build/reports/build.json, as the layer build leaves them."""
    paths = BuildPaths(build=build, cache=build / "cache")
    write_zip(paths.layer_zip, LAYER_FILES if layer is None else layer, directories=("python/", "python/numpy/"))
    write_zip(paths.function_zip, FUNCTION_FILES if function is None else function, directories=("handler/",))
    if report is not None:
        paths.reports.mkdir(parents=True, exist_ok=True)
        paths.report("build").write_text(json.dumps(report))
    return paths


def zip_sums(*zips: Path) -> tuple[int, int, int]:
    """(uncompressed, compressed, file entries) straight from zipfile, for comparison."""
    unzipped = zipped = files = 0
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                unzipped += info.file_size
                zipped += info.compress_size
                files += not info.is_dir()
    return unzipped, zipped, files


def config_with(**budget: object) -> Config:
    return load_config(overrides={"budget": budget})


TRACED = ["numpy/__init__.py", "python/numpy.libs/libopenblas64_p-r0.so", "six.py"]  # both path forms budget reads


def write_smoke_trace(paths: BuildPaths, files: list[str], layer_sha256: str | None = None) -> None:
    """build/reports/smoke.json with an import trace, taken on layer.zip unless another digest is given."""
    from ci.reports import sha256_file

    sha = layer_sha256 or sha256_file(paths.layer_zip)
    report = {"format": 1, "check": "smoke", "artifacts": {"layer.zip": sha}}
    paths.report("smoke").write_text(json.dumps({**report, "import_trace": {"files": files, "distributions": {}}}))


def write_build_trace(
    paths: BuildPaths, files: list[str], workload: str = "events", layer_sha256: str | None = None
) -> None:
    """build.json as the layer build leaves it after tracing the handler: "layer" digest and "import_trace"."""
    from ci.reports import sha256_file

    report = json.loads(paths.report("build").read_text())
    report["layer"] = {"sha256": layer_sha256 or sha256_file(paths.layer_zip)}
    report["import_trace"] = {
        "workload": workload,
        "modules": len(files),
        "files": len(files),
        "bytes": 0,
        "distributions": {},
        "warnings": [],
        "paths": files,  # even for import-only, so a test shows the workload alone rules such a trace out
    }
    paths.report("build").write_text(json.dumps(report))
