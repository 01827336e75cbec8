"""pipeline.toml, loaded once and validated, plus the runtime facts it points at.

Every command takes a `Config`; nothing else hard-codes the target, the limit or the names.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.errors import ConfigError
from ci.paths import REPO_ROOT

CONFIG_FILE = "pipeline.toml"
POLICY_FILE = Path(__file__).resolve().parent / "policy" / "lambda_runtimes.json"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> ELF/wheel name


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
    root: Path
    target: Target
    function: dict[str, Any]
    lock: dict[str, Any]
    build: dict[str, Any]
    budget: dict[str, Any]
    smoke: dict[str, Any]
    deploy: dict[str, Any]
    training: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    def path(self, section: dict[str, Any], key: str) -> Path:
        return self.root / str(section[key])

    @property
    def limit_bytes(self) -> int:
        return positive_int(self.budget.get("limit_bytes"), "budget.limit_bytes")

    @property
    def warn_fraction(self) -> float:
        value = self.budget.get("warn_fraction", 0.9)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError(
                f"budget.warn_fraction in {CONFIG_FILE} is {value!r}: it must be a number in (0, 1]",
                "set e.g. warn_fraction = 0.90",
            )
        return float(value)


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{name} in {CONFIG_FILE} is {value!r}: it must be a positive integer (bytes)",
            f"set {name} = 262144000 (Lambda's unzipped limit) or a smaller positive integer",
        )
    return value


def load_policy(path: Path = POLICY_FILE) -> dict[str, RuntimePolicy]:
    data = json.loads(path.read_text())
    return {
        name: RuntimePolicy(name=name, **{k: v for k, v in facts.items()})
        for name, facts in data.items()
        if not name.startswith("_")
    }


def load_config(root: Path = REPO_ROOT, overrides: dict[str, Any] | None = None, file: Path | None = None) -> Config:
    """Read pipeline.toml under `root` (or `file`); `overrides` (section -> {key: value}) win.

    Relative paths inside the file always resolve against `root`, the repository.
    """
    file = file or root / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"{file} not found", f"run from the repository root, which holds {CONFIG_FILE}")
    try:
        raw = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}", "fix the syntax at the position named") from exc
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)

    sections = ["target", "function", "lock", "build", "budget", "smoke", "deploy", "training"]
    for section in sections:
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"{file} has no [{section}] section", f"add [{section}] (see the README)")

    target_raw = raw["target"]
    policies = load_policy()
    runtime_name = target_raw.get("runtime")
    if runtime_name not in policies:
        raise ConfigError(
            f"target.runtime = {runtime_name!r} in {file} is not a supported Lambda Python runtime",
            f"use one of {', '.join(sorted(policies))}",
        )
    runtime = policies[runtime_name]
    architecture = target_raw.get("architecture", "x86_64")
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"target.architecture = {architecture!r} in {file} is not a Lambda architecture",
            f"use one of {', '.join(ARCHITECTURES)}",
        )
    glibc = str(target_raw.get("glibc", runtime.glibc))
    if _version_tuple(glibc) > _version_tuple(runtime.glibc):
        raise ConfigError(
            f"target.glibc = {glibc} is newer than {runtime.name}'s {runtime.os} (glibc {runtime.glibc})",
            f"remove target.glibc or set it to {runtime.glibc} or lower",
        )
    return Config(
        root=root,
        target=Target(runtime=runtime, architecture=architecture, glibc=glibc),
        **{section: raw[section] for section in sections if section != "target"},
        raw=raw,
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError as exc:
        raise ConfigError(f"glibc version {text!r} is not of the form 2.26", "write it as MAJOR.MINOR") from exc
