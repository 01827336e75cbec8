"""A small repository for `budget --what-if`, offline: a file:// simple index of real wheels made here,
a lock resolved from it by the real resolver, and a layer built from it by the build's own steps.

The index holds stand-ins for the runtime's own packages (the layer is resolved together with them,
as `ci lock` does), the layer's packages, and the packages the tests ask about: a small one, a large
one, one whose new version needs a newer glibc, and one that forces an existing pin to move.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ci import zipsafe
from ci.config import Config, load_config
from ci.layer.wheels import fetch, install_wheels, read_layer_lock
from ci.lock.resolve import compile_lock, lock_jobs
from ci.paths import REPO_ROOT, BuildPaths
from ci.reports import sha256_file
from ci.site import rules
from ci.site.owners import Owners

PURE = "py3-none-any"


def noise(size: int, seed: int = 1) -> bytes:
    """Bytes that deflate poorly (sizes in a zip stay close to sizes on disk)."""
    return hashlib.shake_256(f"{seed}".encode()).digest(size)


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    tag: str = PURE,
    requires: tuple[str, ...] = (),
) -> Path:
    """<name>-<version>-<tag>.whl with METADATA (Requires-Dist), WHEEL and a hashed RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {req}\n" for req in requires
    )
    contents = {
        **files,
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in contents.items()
    ]
    contents[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, data in contents.items():
            wheel.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), data)
    return path


def package(name: str, size: int = 2_000, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """A package `name` with an __init__.py of about `size` bytes, a test folder (pruned) and `extra` files."""
    module = name.replace("-", "_")
    body = b"VALUE = 1\n" + b"# " + noise(size // 2).hex().encode()[: size - 14] + b"\n"
    return {
        f"{module}/__init__.py": body,
        f"{module}/tests/test_it.py": b"def test_it():\n    assert True\n" + b"#" * 3_000 + b"\n",
        **(extra or {}),
    }


def write_index(root: Path) -> str:
    """simple/<project>/index.html for every wheel under root/files/<project>/; the index's file:// URL."""
    simple = root / "simple"
    for project in sorted((root / "files").iterdir()):
        page = simple / project.name
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="../../files/{project.name}/{wheel.name}#sha256={sha256_file(wheel)}">{wheel.name}</a>\n'
            for wheel in sorted(project.glob("*.whl"))
        )
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    return simple.as_uri()


def add_wheel(root: Path, name: str, version: str, files: dict[str, bytes], **options: object) -> Path:
    return make_wheel(root / "files" / name, name, version, files, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MiniRepo:
    root: Path
    config_file: Path
    paths: BuildPaths
    index: Path

    def cli(self, *args: str) -> list[str]:
        """argv after `python`: `-m ci` with this repository's build tree, cache and configuration."""
        return [
            "-m", "ci", "--build-dir", str(self.paths.build), "--cache-dir", str(self.paths.cache),
            "--config", str(self.config_file), *args,
        ]  # fmt: skip

    @property
    def lock(self) -> Path:
        return self.root / "requirements-layer.txt"


def make_index(root: Path, config: Config) -> None:
    """The runtime's packages (stand-ins), the layer's, and those the tests ask about."""
    for pin in config.target.runtime.provided:
        name, version = pin.split("==")
        add_wheel(root, name, version, {f"{name.replace('-', '_')}_stub.py": b"STUB = True\n"})
    add_wheel(root, "basepkg", "1.0", package("basepkg", 20_000), requires=("sharedpkg>=1.0",))
    add_wheel(root, "sharedpkg", "1.0", package("sharedpkg", 10_000))
    add_wheel(root, "unusedpkg", "1.0", package("unusedpkg", 1_000, {"unusedpkg/data.bin": noise(2_000_000, 2)}))
    add_wheel(root, "smallpkg", "1.0", package("smallpkg", 3_000))
    add_wheel(root, "bigpkg", "1.0", package("bigpkg", 2_000, {"bigpkg/model.bin": noise(3_000_000, 3)}))
    # Like lightgbm: glibcpkg 2.0 only for glibc 2.28 (Amazon Linux 2 has 2.26), 1.0 for manylinux2014.
    add_wheel(root, "glibcpkg", "1.0", package("glibcpkg"), tag="py3-none-manylinux2014_x86_64")
    add_wheel(root, "glibcpkg", "2.0", package("glibcpkg"), tag="py3-none-manylinux_2_28_x86_64")


def make_repo(root: Path) -> MiniRepo:
    """requirements.in (basepkg, unusedpkg), its lock (sharedpkg 1.0, before 2.0 exists) and a built layer."""
    index_root = root / "index"
    requirements_in = root / "requirements.in"
    requirements_in.write_text("basepkg\nunusedpkg\n")
    config_file = root / "pipeline.toml"
    text = (REPO_ROOT / "pipeline.toml").read_text()
    # The scenarios are python3.11's (glibc 2.26: a manylinux_2_28 wheel does not load), whatever the
    # committed pipeline.toml targets.
    text = re.sub(r'(?m)^runtime = "[^"]*"', 'runtime = "python3.11"', text)
    text = re.sub(r'(?m)^architecture = "[^"]*"', 'architecture = "x86_64"', text)
    text = text.replace('requirements_in = "requirements.in"', f'requirements_in = "{requirements_in}"')
    text = text.replace('layer_lock = "requirements-layer.txt"', f'layer_lock = "{root / "requirements-layer.txt"}"')
    text = text.replace(
        'index_url = "https://pypi.org/simple"',
        f'index_url = "{(index_root / "simple").as_uri()}"\nallow_insecure_index = true',  # a local test index
    )
    config_file.write_text(text)
    config = load_config(file=config_file)
    make_index(index_root, config)
    write_index(index_root)
    paths = BuildPaths(build=root / "build", cache=root / "cache")
    compile_lock(lock_jobs(config)[0], config.lock.index_url, uv_cache=paths.cache / "uv")
    build_layer_like_ci(config, paths)
    # Published after the lock was made: the lock keeps 1.0 until a request needs 2.0.
    add_wheel(index_root, "sharedpkg", "2.0", package("sharedpkg", 12_000))
    add_wheel(index_root, "needsnew", "1.0", package("needsnew"), requires=("sharedpkg>=2.0",))
    write_index(index_root)
    return MiniRepo(root, config_file, paths, index_root)


def build_layer_like_ci(config: Config, paths: BuildPaths) -> None:
    """layer.zip, function.zip and reports/build.json as `ci build` leaves them, by its own steps:
    fetch (hashed), install, prune with the configured rules, zip; the trace imports basepkg only."""
    lock = read_layer_lock(config.lock.layer_lock)
    wheels = fetch(lock, paths.wheel_cache, config.target, config.lock.index_url).wheels
    site = paths.layer_tree / "python"
    installed = install_wheels(wheels, site)
    removed = rules.apply_rules(site, config.build.prune)
    layer = zipsafe.write_zip(zipsafe.tree_entries(paths.layer_tree), paths.layer_zip)
    function_tree = paths.build / "function"
    (function_tree / "handler").mkdir(parents=True, exist_ok=True)
    (function_tree / "handler" / "app.py").write_text("import basepkg\n\ndef lambda_handler(event, context):\n")
    function = zipsafe.write_zip(zipsafe.tree_entries(function_tree), paths.function_zip)
    owners = Owners.of_installed((d.name, d.files) for d in installed)
    report = {
        "format": 1,
        "check": "build",
        "passed": True,
        "artifacts": {},
        "findings": [],
        "lock": {"path": lock.path.name, "sha256": lock.digest, "pins": len(lock.entries)},
        "layer": asdict(layer),
        "function": asdict(function),
        "rules": {name: result.summary() for name, result in removed.items()},
        "distributions": {d.name: {"version": d.version} for d in installed},
        "top_level": owners.completed_top_level(child.name for child in site.iterdir()),
        "bytecode": {"mode": "runtime", "files": 0, "bytes": 0},
        "import_trace": {"workload": "events", "paths": ["basepkg/__init__.py", "sharedpkg/__init__.py"]},
    }
    paths.reports.mkdir(parents=True, exist_ok=True)
    paths.report("build").write_text(json.dumps(report, indent=1))
