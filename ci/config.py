"""pipeline.toml, loaded once and checked whole, plus the runtime facts it points at.

Every command takes a `Config` of typed sections (ci/config_sections.py); nothing else
hard-codes the target, the limit or the names, and no reader checks a value again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.config_schema import Table, check_names, closest, read_toml, suggestion, toml_value
from ci.config_sections import (
    BudgetConfig,
    BuildConfig,
    DeployConfig,
    ExtraLayerArn,
    FunctionConfig,
    LockConfig,
    SmokeConfig,
    TrainingConfig,
    keys,
    parse_budget,
    parse_build,
    parse_deploy,
    parse_function,
    parse_lock,
    parse_smoke,
    parse_training,
)
from ci.errors import ConfigError
from ci.paths import REPO_ROOT
from ci.site.owners import canonical as canonicalize_name

__all__ = [
    "BudgetConfig",
    "BuildConfig",
    "Config",
    "ConfigError",
    "DeployConfig",
    "ExtraLayerArn",
    "FunctionConfig",
    "LockConfig",
    "SmokeConfig",
    "Target",
    "TrainingConfig",
    "load_config",
]

CONFIG_FILE = "pipeline.toml"
POLICY_FILE = Path(__file__).resolve().parent / "policy" / "lambda_runtimes.json"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> ELF/wheel name
# GitHub-hosted runner of each architecture: the jobs that execute the layer's native code run there.
RUNNERS = {"x86_64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
SNAPSTART_MIN_PYTHON = (3, 12)  # Lambda SnapStart for Python starts with python3.12
SECTIONS = ("target", "function", "lock", "build", "budget", "smoke", "deploy", "training")


@dataclass(frozen=True)
class RuntimePolicy:
    """What one managed Lambda Python runtime is (from ci/policy/lambda_runtimes.json)."""

    name: str
    python: str
    os: str
    glibc: str
    uv_platform: dict[str, str]
    sys_path: list[str]
    provided: list[str]

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")


@dataclass(frozen=True)
class Target:
    runtime: RuntimePolicy
    architecture: str  # Lambda's spelling: x86_64 | arm64
    glibc: str

    @property
    def machine(self) -> str:
        """The ELF/wheel spelling of the architecture (x86_64 | aarch64)."""
        return ARCHITECTURES[self.architecture]

    @property
    def runner(self) -> str:
        """The GitHub-hosted runner label whose machine is the target's (workflows read it, never repeat it)."""
        return RUNNERS[self.architecture]

    @property
    def glibc_tuple(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)

    @property
    def extension_suffix(self) -> str:
        """The tag of extension modules built for this target, e.g. cpython-311-x86_64-linux-gnu."""
        return f"cpython-{self.runtime.python.replace('.', '')}-{self.machine}-linux-gnu"

    @property
    def uv_platform(self) -> str:
        return self.runtime.uv_platform[self.architecture]


@dataclass(frozen=True)
class Config:
    """Every section typed and checked; `file` is the configuration read (pipeline.toml or --config)."""

    root: Path
    file: Path
    target: Target
    function: FunctionConfig
    lock: LockConfig
    build: BuildConfig
    budget: BudgetConfig
    smoke: SmokeConfig
    deploy: DeployConfig
    training: TrainingConfig

    def value(self, section: str, key: str) -> str | None:
        """SECTION.KEY as text (paths relative to the repository), or None if there is no such key."""
        if section == "target" and key in ("runtime", "architecture", "glibc", "runner"):
            return self.target.runtime.name if key == "runtime" else str(getattr(self.target, key))
        table = getattr(self, section, None) if section in SECTIONS else None
        if table is None or key not in keys(type(table)):
            return None
        value = getattr(table, key)
        return self.relative(value) if isinstance(value, Path) else str(value)

    def relative(self, path: Path) -> str:
        """`path` as written relative to the repository (absolute if outside it)."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)


def load_policy(path: Path = POLICY_FILE) -> dict[str, RuntimePolicy]:
    data = json.loads(path.read_text())
    return {
        name: RuntimePolicy(name=name, **{k: v for k, v in facts.items()})
        for name, facts in data.items()
        if not name.startswith("_")
    }


def load_config(root: Path = REPO_ROOT, overrides: dict[str, Any] | None = None, file: Path | None = None) -> Config:
    """Read and check pipeline.toml under `root` (or `file`); `overrides` (section -> {key: value}) win.

    Relative paths inside the file always resolve against `root`, the repository. Any mistake is a
    ConfigError naming the file, section and key, raised here, before a command does anything.
    """
    file = file or root / CONFIG_FILE
    raw = read_toml(file)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    check_names(file, "the file", raw, SECTIONS, "section")
    for section in SECTIONS:
        if section not in raw:
            raise ConfigError(f"{file}: the [{section}] section is missing", f"add [{section}] (see the README)")

    def table(section: str, cls: type) -> Table:
        return Table(file, section, raw[section], keys(cls))

    target = parse_target(table("target", Target), file)
    function = parse_function(table("function", FunctionConfig))
    check_snapstart(function, target, file)
    lock = parse_lock(table("lock", LockConfig), root)
    check_bundled(lock, target, file)
    return Config(
        root=root,
        file=file,
        target=target,
        function=function,
        lock=lock,
        build=parse_build(table("build", BuildConfig)),
        budget=parse_budget(table("budget", BudgetConfig), root),
        smoke=parse_smoke(table("smoke", SmokeConfig), root),
        deploy=parse_deploy(table("deploy", DeployConfig)),
        training=parse_training(table("training", TrainingConfig)),
    )


def parse_target(table: Table, file: Path) -> Target:
    policies = load_policy()
    runtime = policies[table.choice("runtime", sorted(policies))]
    architecture = table.choice("architecture", list(ARCHITECTURES), default="x86_64")
    glibc = table.text(
        "glibc", f'"{runtime.glibc}"', default=runtime.glibc, pattern=r"\d+\.\d+", wants="a version like 2.26"
    )
    if _version_tuple(glibc) > _version_tuple(runtime.glibc):
        raise ConfigError(
            f"{file}: [target] glibc = {glibc} is newer than {runtime.name}'s {runtime.os} (glibc {runtime.glibc})",
            f"remove glibc from [target] or set it to {runtime.glibc} or lower",
        )
    return Target(runtime=runtime, architecture=architecture, glibc=glibc)


def check_snapstart(function: FunctionConfig, target: Target, file: Path) -> None:
    """SnapStart exists for Python from 3.12 on: refuse it on an older runtime before anything runs."""
    if function.snapstart and _version_tuple(target.runtime.python) < SNAPSTART_MIN_PYTHON:
        minimum = ".".join(map(str, SNAPSTART_MIN_PYTHON))
        raise ConfigError(
            f"{file}: [function] snapstart = true but [target] runtime = {target.runtime.name}: Lambda SnapStart for "
            f"Python needs python{minimum} or later",
            f'set [target] runtime = "python{minimum}" (or later), or remove snapstart from [function]',
        )


def shipped_packages(runtime: str, policy_dir: Path = POLICY_FILE.parent) -> dict[str, str]:
    """What a runtime ships in /var/runtime (canonical name -> version): its generated, hashed pins
    ci/policy/runtime-<runtime>.txt (`python -m ci lock --runtime-packages`); empty before they exist."""
    path = policy_dir / f"runtime-{runtime}.txt"
    if not path.is_file():
        return {}
    pins = (re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line) for line in path.read_text().splitlines())
    return {canonicalize_name(pin.group(1)): pin.group(2) for pin in pins if pin}


def check_bundled(lock: LockConfig, target: Target, file: Path) -> None:
    """Only a package the runtime ships can be bundled instead: anything else goes in requirements.in."""
    shipped = shipped_packages(target.runtime.name)
    for name in lock.bundle_runtime_packages:
        if name not in shipped:
            close = closest(name, shipped)
            raise ConfigError(
                f"{file}: [lock] bundle_runtime_packages names {toml_value(name)}{suggestion(name, shipped)}, which "
                f"the {target.runtime.name} runtime does not provide; it provides: {', '.join(sorted(shipped))}",
                f"rename it to {toml_value(close)}"
                if close
                else f"remove {toml_value(name)} from it (the layer ships whatever requirements.in asks for that the "
                "runtime lacks)",
            )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
