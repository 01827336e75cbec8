"""pipeline.toml, loaded once and checked whole into a `Config` of typed sections, plus the runtime facts it points
at. [target] and this module are standard library only: `python3 -m ci.github config` reads [target] anywhere."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci.errors import ConfigError, check_names, check_table, closest, refusal, suggestion, toml_value
from ci.paths import LOCK_FILE_DEFAULTS, POLICY_FILE, REPO_ROOT, inside
from ci.site.owners import canonical as canonicalize_name

if TYPE_CHECKING:
    from ci import config_sections as sections

CONFIG_FILE = "pipeline.toml"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> ELF/wheel name
# GitHub-hosted runner per architecture, where jobs run the layer's native code (workflows read Target.runner).
RUNNERS = {"x86_64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
SNAPSTART_MIN_PYTHON = "3.12"  # Lambda SnapStart for Python starts with python3.12
SECTIONS = ("target", "function", "lock", "build", "budget", "smoke", "deploy", "training")
TARGET_KEYS = ("runtime", "architecture", "glibc")


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class RuntimePolicy:  # one managed Lambda Python runtime, from ci/policy/lambda_runtimes.json
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
        return ARCHITECTURES[self.architecture]

    @property
    def runner(self) -> str:
        return RUNNERS[self.architecture]

    @property
    def glibc_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.glibc)

    @property
    def extension_suffix(self) -> str:
        """The tag of extension modules built for this target, e.g. cpython-311-x86_64-linux-gnu."""
        return f"cpython-{self.runtime.python.replace('.', '')}-{self.machine}-linux-gnu"

    @property
    def uv_platform(self) -> str:
        return self.runtime.uv_platform[self.architecture]

    def value(self, key: str) -> str | None:
        if key not in (*TARGET_KEYS, "runner"):
            return None
        return self.runtime.name if key == "runtime" else str(getattr(self, key))


@dataclass(frozen=True)
class Config:
    root: Path
    file: Path  # the configuration read: pipeline.toml or --config
    target: Target
    function: sections.FunctionConfig
    lock: sections.LockConfig
    build: sections.BuildConfig
    budget: sections.BudgetConfig
    smoke: sections.SmokeConfig
    deploy: sections.DeployConfig
    training: sections.TrainingConfig

    def value(self, section: str, key: str) -> str | None:
        if section == "target":
            return self.target.value(key)
        table = getattr(self, section, None) if section in SECTIONS else None
        if table is None or key not in (field.name for field in fields(table)):
            return None
        value = getattr(table, key)
        return self.relative(value) if isinstance(value, Path) else str(value)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)


def read_toml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(f"{file} not found", "run from the repository root (it holds pipeline.toml) or pass --config")
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}", "fix the syntax at the position named") from exc


def load_policy() -> dict[str, RuntimePolicy]:
    data = json.loads(POLICY_FILE.read_text())
    return {name: RuntimePolicy(name=name, **facts) for name, facts in data.items() if not name.startswith("_")}


def read_sections(file: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = read_toml(file)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    check_names(file, "the file", raw, SECTIONS, "section")
    for section in SECTIONS:
        if section not in raw:
            raise ConfigError(f"{file}: the [{section}] section is missing", f"add [{section}] (see the README)")
    return raw


def load_config(root: Path = REPO_ROOT, overrides: dict[str, Any] | None = None, file: Path | None = None) -> Config:
    """pipeline.toml checked whole, paths resolved against `root`: any mistake is a ConfigError before any work."""
    from ci.config_sections import read_section  # pydantic: imported here only (docs/design.md)

    file = file or root / CONFIG_FILE
    raw = read_sections(file, overrides)
    target = parse_target(file, raw["target"])
    sections = {name: read_section(file, root, name, raw[name]) for name in SECTIONS[1:]}
    config = Config(root=root, file=file, target=target, **sections)
    check_runtime_fits(config)
    return config


def config_value(section: str, key: str, root: Path = REPO_ROOT) -> str | None:
    """SECTION.KEY for a workflow step; [target] with the standard library alone (a bare runner's python3)."""
    if section == "target":
        file = root / CONFIG_FILE
        return parse_target(file, read_sections(file)["target"]).value(key)
    return load_config(root).value(section, key)


def lock_files(root: Path = REPO_ROOT) -> list[Path]:
    """[lock]'s .in files and locks, read with the standard library alone (relock-pr runs on a bare runner)."""
    table = read_sections(root / CONFIG_FILE)["lock"]
    named = {key: value for key, value in table.items() if key.endswith(("_in", "_lock")) and isinstance(value, str)}
    paths = {key: root / value for key, value in {**LOCK_FILE_DEFAULTS, **named}.items()}
    for key, path in paths.items():
        if not inside(path, root):
            raise refusal(root / CONFIG_FILE, "lock", key, table, "a path inside the repository", toml_value(path.name))
    return list(paths.values())


def parse_target(file: Path, values: object) -> Target:
    table = check_table(file, "target", values, TARGET_KEYS)
    policies = load_policy()

    def choice(key: str, choices: list[str], default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or value not in choices:
            wants = "one of " + ", ".join(map(toml_value, choices))
            raise refusal(file, "target", key, table, wants, toml_value(default or choices[0]))
        return value

    runtime = policies[choice("runtime", sorted(policies))]
    architecture = choice("architecture", list(ARCHITECTURES), default="x86_64")
    glibc = table.get("glibc", runtime.glibc)
    if not isinstance(glibc, str) or not re.fullmatch(r"\d+\.\d+", glibc):
        raise refusal(file, "target", "glibc", table, "a version like 2.26", f'"{runtime.glibc}"')
    if version_tuple(glibc) > version_tuple(runtime.glibc):
        raise ConfigError(
            f"{file}: [target] glibc = {glibc} is newer than {runtime.name}'s {runtime.os} (glibc {runtime.glibc})",
            f"remove glibc from [target] or set it to {runtime.glibc} or lower",
        )
    return Target(runtime=runtime, architecture=architecture, glibc=glibc)


def check_runtime_fits(config: Config) -> None:
    """What [function] and [lock] ask of the runtime: SnapStart (python3.12+), bundling only what it ships."""
    runtime = config.target.runtime
    if config.function.snapstart and version_tuple(runtime.python) < version_tuple(SNAPSTART_MIN_PYTHON):
        raise ConfigError(
            f"{config.file}: [function] snapstart = true but [target] runtime = {runtime.name}: Lambda SnapStart for "
            f"Python needs python{SNAPSTART_MIN_PYTHON} or later",
            f'set [target] runtime = "python{SNAPSTART_MIN_PYTHON}" (or later), or remove snapstart from [function]',
        )
    shipped = shipped_packages(runtime.name)
    for name in config.lock.bundle_runtime_packages:
        if name not in shipped:
            close = closest(name, shipped)
            raise ConfigError(
                f"{config.file}: [lock] bundle_runtime_packages names {toml_value(name)}{suggestion(name, shipped)}, "
                f"which the {runtime.name} runtime does not provide; it provides: {', '.join(sorted(shipped))}",
                f"rename it to {toml_value(close)}"
                if close
                else f"remove {toml_value(name)} from it (the layer ships whatever requirements.in asks for that the "
                "runtime lacks)",
            )


def shipped_packages(runtime: str) -> dict[str, str]:
    """/var/runtime's packages (canonical name -> version) from `ci lock --runtime-packages`' pins, if made yet."""
    path = POLICY_FILE.parent / f"runtime-{runtime}.txt"
    if not path.is_file():
        return {}
    pins = (re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line) for line in path.read_text().splitlines())
    return {canonicalize_name(pin.group(1)): pin.group(2) for pin in pins if pin}
