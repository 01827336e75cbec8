"""pipeline.toml's sections as pydantic dataclasses: a field per allowed key, its type, range and default; its
description says what is allowed and its example is the line a refusal offers (one ConfigError line)."""

import re
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass

from ci.errors import ConfigError, check_table, refusal, suggestion, toml_value
from ci.paths import LOCK_FILE_DEFAULTS, inside
from ci.site.owners import canonical as canonicalize_name
from ci.site.rules import RULES, STRIP

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: function code + all layers, unzipped (fixed by Lambda)
PRUNE_RULES = (*RULES, STRIP)
# Where training and the tools run unless [lock] says otherwise; the host's Python is the target runtime's.
HOST_PLATFORM = "x86_64-manylinux_2_17"
_KEY_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._-]+"  # one segment of an S3 key prefix: not "." nor ".."
# extra="forbid": a typo is refused, never ignored; python-re: the patterns need lookaheads.
SECTION = ConfigDict(extra="forbid", validate_default=True, regex_engine="python-re")


class RefusedError(ValueError):
    """A validator's wording after "[section] key " (or "[section] "); no `fix`: the key's example + `fix_suffix`."""

    def __init__(self, problem: str, fix: str = "", fix_suffix: str = "") -> None:
        super().__init__(problem)
        self.problem, self.fix, self.fix_suffix = problem, fix, fix_suffix


def allowed(wants: str, example: str, default: Any = ..., **constraints: Any) -> Any:
    """A key (required unless `default`): its constraints, what a refusal says it must be, the example it offers."""
    return Field(default, description=wants, examples=[example], **constraints)


def text(example: str, pattern: str = ".+", wants: str = "a non-empty string", default: Any = ...) -> Any:
    return allowed(wants, example, default, pattern=rf"\A(?:{pattern})\Z")


def one_of(choices: tuple[str, ...], default: str) -> Any:
    wants = "one of " + ", ".join(toml_value(choice) for choice in choices)
    return text(toml_value(default), "|".join(map(re.escape, choices)), wants, default)


def integer(example: int, minimum: int, maximum: int | None = None, unit: str = "", default: Any = ...) -> Any:
    wants = f"an integer from {minimum:,} to {maximum:,}" if maximum is not None else f"an integer >= {minimum}"
    return allowed(wants + (f" {unit}" if unit else ""), str(example), default, ge=minimum, le=maximum)


def number(example: float, default: Any = ..., **bounds: float) -> Any:
    signs = {"gt": ">", "ge": ">=", "le": "<=", "lt": "<"}
    wants = "a number " + " and ".join(f"{signs[name]} {bounds[name]:g}" for name in signs if name in bounds)
    return allowed(wants, str(example), default, **bounds)


def strings(example: str) -> Any:
    return allowed("a list of strings", example, ())


def flag() -> Any:
    return allowed("true or false", "false", False)


def path(example: str, default: Any = ...) -> Any:
    return allowed("a path inside the repository", f'"{example}"', default)


def inside_repository(value: object, info: ValidationInfo) -> object:
    """A path relative to the repository that stays inside it (or beside the configuration file) resolved."""
    roots: tuple[Path, ...] = (info.context or {}).get("roots", ())
    if not isinstance(value, (str, Path)) or not roots:
        return value  # no context: a Path from code (dataclasses.replace); or a type pydantic refuses itself
    if value == "":
        raise ValueError("empty")
    path = roots[0] / value
    if not inside(path, *roots):
        raise RefusedError(
            f"= {toml_value(value)} is not allowed: it must be a path inside the repository "
            f"({' or '.join(dict.fromkeys(str(root.resolve()) for root in roots))}), and {path.resolve()} is not",
            fix_suffix=" (relative to the repository)",
        )
    return path


def known_rules(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if name not in PRUNE_RULES:
            raise RefusedError(
                f"names {toml_value(name)}{suggestion(name, PRUNE_RULES)}, which is not one of "
                + ", ".join(PRUNE_RULES),
                f"fix or remove {toml_value(name)} in prune",
            )
    return names


def kept_globs(globs: tuple[str, ...]) -> tuple[str, ...]:
    for glob in globs:
        if glob.startswith("/") or "\\" in glob or ".." in glob.split("/"):
            raise RefusedError(
                f"names {toml_value(glob)}, which is not allowed: each must be a relative path glob without '..' "
                "segments or backslashes"
            )
    return globs


def removed_globs(globs: tuple[str, ...]) -> tuple[str, ...]:
    for glob in globs:
        parts = glob.replace("\\", "/").split("/")
        why = (
            "is absolute" if glob.startswith(("/", "\\")) else
            "climbs out of python/ with .." if ".." in parts else
            "is empty" if not glob.strip("/ ") else ""
        )  # fmt: skip
        if why:
            raise RefusedError(
                f"names {toml_value(glob)}, which {why}: each must be a path glob relative to the layer's python/ "
                "folder"
            )
    return globs


NAME = r"[A-Za-z0-9_-]{1,64}"
STEP_PERCENT = "an integer from 1 to 99 percent"
HANDLER = "package.module.function of the handler"
INDEX = "an https:// URL of a simple index (http:// or file:// only with allow_insecure_index = true)"
PREFIX = "an S3 key prefix of plain segments ([A-Za-z0-9._-], not '.' or '..') separated by single '/'"
RepoPath = Annotated[Path, BeforeValidator(inside_repository)]
Strings = tuple[StrictStr, ...]
Canonical = Annotated[Strings, AfterValidator(lambda names: tuple(map(canonicalize_name, names)))]
Rules = Annotated[Strings, AfterValidator(known_rules)]


@dataclass(frozen=True, kw_only=True, config=SECTION)
class FunctionConfig:
    name: str = text('"forgetting-curve"', NAME, f"a Lambda function name ({NAME})")
    handler: str = text('"handler.app.lambda_handler"', r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", HANDLER)
    memory_mb: StrictInt = integer(512, 128, 10240, unit="MB (Lambda's range)")
    timeout_s: StrictInt = integer(60, 1, 900, unit="seconds (Lambda's range)")
    alias: str = text('"live"', r"[A-Za-z][A-Za-z0-9_-]{0,127}", "an alias name")
    layer_name: str = text('"forgetting-curve-runtime"', r"[A-Za-z0-9_-]{1,140}", "a layer name")
    snapstart: StrictBool = flag()  # python3.12+: checked against [target] in ci/config.py


@dataclass(frozen=True, kw_only=True, config=SECTION)
class LockConfig:
    requirements_in: RepoPath = path("requirements.in")
    layer_lock: RepoPath = path("requirements-layer.txt")
    training_in: RepoPath = path("training/requirements.in")
    training_lock: RepoPath = path("training/requirements.txt")
    # What `make pipeline` and the verify jobs install; keys added later default to their example (older files load).
    pipeline_in: RepoPath = path("requirements-pipeline.in", LOCK_FILE_DEFAULTS["pipeline_in"])
    pipeline_lock: RepoPath = path("requirements-pipeline.txt", LOCK_FILE_DEFAULTS["pipeline_lock"])
    dev_in: RepoPath = path("requirements-dev.in")  # linters, test tools, emulators
    dev_lock: RepoPath = path("requirements-dev.txt")
    bootstrap_lock: RepoPath = path("requirements-bootstrap.txt", LOCK_FILE_DEFAULTS["bootstrap_lock"])  # uv, hashed
    index_url: str = text('"https://pypi.org/simple"', r"(https?|file)://\S+", INDEX)
    host_platform: str = text(f'"{HOST_PLATFORM}"', default=HOST_PLATFORM)  # uv's --python-platform
    # Runtime packages the layer ships anyway (checked in ci/config.py): the layer, not AWS, decides their version.
    bundle_runtime_packages: Canonical = strings('["urllib3"]')
    allow_insecure_index: StrictBool = flag()  # an http:// or file:// index_url: named, never silent

    @model_validator(mode="after")
    def _secure_index(self) -> Self:
        if not self.allow_insecure_index and not self.index_url.startswith("https://"):
            raise RefusedError(
                f"index_url = {toml_value(self.index_url)} is not allowed: it must be {INDEX}",
                'write index_url = "https://pypi.org/simple" under [lock]',
            )
        return self


@dataclass(frozen=True, kw_only=True, config=SECTION)
class BuildConfig:
    # Rule names of ci/site/rules.py (and "strip"), applied in this order.
    prune: Rules = allowed(f"a list of names from {', '.join(PRUNE_RULES)}", '["tests", "docs"]', PRUNE_RULES)
    bytecode: str = one_of(("runtime", "all", "none"), "runtime")
    sourceless: StrictBool = flag()
    prune_unimported: StrictBool = flag()
    # Path globs (relative to python/) no rule may remove, and ones the build removes; keep wins.
    keep: Annotated[Strings, AfterValidator(kept_globs)] = strings('["sklearn/datasets/*"]')
    remove: Annotated[Strings, AfterValidator(removed_globs)] = strings('["sklearn/cluster/*"]')


@dataclass(frozen=True, config=SECTION)
class ExtraLayerArn:
    """A layer attached by ARN: not in our hands, so its unzipped size is declared."""

    arn: str = text('"arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION"', r"arn:\S*:layer:\S+", "a layer version's ARN")
    unzipped_bytes: StrictInt = integer(12345678, 1, LAMBDA_UNZIPPED_LIMIT, unit="bytes")


@dataclass(frozen=True, kw_only=True, config=SECTION)
class BudgetConfig:
    limit_bytes: StrictInt = integer(
        LAMBDA_UNZIPPED_LIMIT, 1, LAMBDA_UNZIPPED_LIMIT, "bytes (Lambda's fixed unzipped limit)"
    )
    warn_fraction: StrictFloat = number(0.9, 0.9, gt=0, le=1)
    extra_layer_zips: tuple[RepoPath, ...] = strings('["vendor/otel.zip"]')
    extra_layer_arns: tuple[ExtraLayerArn, ...] = allowed(
        "a list of tables",
        '[{ arn = "arn:aws:lambda:us-east-1:123456789012:layer:NAME:3", unzipped_bytes = 12345678 }]',
        (),
    )


@dataclass(frozen=True, kw_only=True, config=SECTION)
class SmokeConfig:
    events: RepoPath = path("tests/events")
    warm_invocations: StrictInt = integer(20, 0)
    warm_event: str = text('"direct-single"', ".*", "an event name", "")  # "": a successful prediction
    init_limit_s: StrictFloat = number(10.0, gt=0, le=10.0)  # an on-demand function's init phase (fixed by Lambda)


# SAM's DeploymentPreference types (CodeDeploy's predefined configurations): strategy, percent, interval.
PRESETS = {
    "AllAtOnce": ("all-at-once", 100, 0),
    **{f"Canary10Percent{m}Minutes": ("canary", 10, m * 60) for m in (5, 10, 15, 30)},
    **{f"Linear10PercentEvery{m}Minute{'s' if m > 1 else ''}": ("linear", 10, m * 60) for m in (1, 2, 3, 10)},
}
MAX_SHIFT_S = 40 * 60  # the deploy job's timeout-minutes is 60; the rest of the deploy needs the remainder


@dataclass(frozen=True, kw_only=True, config=SECTION)
class DeployConfig:
    bucket: str = text('"forgetting-curve-artifacts"', r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name")
    region: str = text('"us-east-1"', r"[a-z]{2}(-[a-z]+)+-\d+", "an AWS region")
    stack_name: str = text('"forgetting-curve"', r"[A-Za-z][A-Za-z0-9-]{0,127}", "a stack name")
    key_prefix: str = text('"artifacts"', rf"{_KEY_SEGMENT}(/{_KEY_SEGMENT})*", PREFIX)
    # "" = none; bootstrap then needs --github-repository
    github_repository: str = text('"OWNER/NAME"', r"([\w.-]+/[\w.-]+)?", "OWNER/NAME", "")
    check_warm_invocations: StrictInt = integer(0, 0, default=0)  # warm invocations in the post-deploy check
    strategy: str = one_of(("all-at-once", "canary", "linear", *PRESETS), "all-at-once")  # presets: see read_section
    step_percent: StrictInt = allowed(STEP_PERCENT, "10", 10, ge=1, le=100)  # 100 only from AllAtOnce (read_section)
    step_interval_s: StrictInt = integer(300, 0, 3600, "seconds", 300)  # between steps, alarms read throughout
    alarms: Strings = strings('["my-team-5xx"]')  # CloudWatch alarms watched besides the stack's own

    @model_validator(mode="after")
    def _fits_the_deploy_job(self) -> Self:
        """A shift waits one interval per step before the new version takes everything."""
        percent, interval = self.step_percent, self.step_interval_s
        steps = {"canary": 1, "linear": len(range(percent, 100, percent))}.get(self.strategy, 0)
        if steps * interval > MAX_SHIFT_S:
            raise RefusedError(
                f"strategy {self.strategy} with {percent}% steps every {interval}s shifts for "
                f"{steps * interval // 60} minutes, longer than the {MAX_SHIFT_S // 60} a deploy job allows",
                "take larger steps or a shorter step_interval_s (the deploy job's timeout-minutes is 60)",
            )
        return self


@dataclass(frozen=True, kw_only=True, config=SECTION)
class TrainingConfig:
    seed: StrictInt = integer(20161, 0, 2**32 - 1)  # numpy and scikit-learn take seeds below 2**32
    learners: StrictInt = integer(400, 1)
    items: StrictInt = integer(300, 1)
    reviews: StrictInt = integer(60000, 1)
    test_fraction: StrictFloat = number(0.2, gt=0, lt=1)
    max_log_loss_ratio: StrictFloat = number(0.85, gt=0)  # model log loss / constant baseline's
    min_roc_auc: StrictFloat = number(0.7, ge=0, le=1)
    max_mae: StrictFloat = number(0.08, ge=0)  # against the simulator's true p (skipped without p_true)
    max_ece: StrictFloat = number(0.05, ge=0)
    # |model - simulator's true recall| at each reference history (simulated data only)
    max_history_error: StrictFloat = number(0.05, ge=0, le=1)


TABLE_ENTRIES: dict[str, type[Any]] = {"extra_layer_arns": ExtraLayerArn}  # the keys holding arrays of tables
SECTIONS: dict[str, type[Any]] = {  # [function] is FunctionConfig, ...
    section.__name__.removesuffix("Config").lower(): section
    for section in (FunctionConfig, LockConfig, BuildConfig, BudgetConfig, SmokeConfig, DeployConfig, TrainingConfig)
}


def read_section(file: Path, root: Path, section: str, values: object) -> Any:
    cls = SECTIONS[section]
    table = check_table(file, section, values, cls.__pydantic_fields__)
    strategy = table.get("strategy") if section == "deploy" else None
    preset = PRESETS.get(strategy) if isinstance(strategy, str) else None
    if preset is not None:  # a SAM preset name as strategy sets step_percent and step_interval_s too
        for key in ("step_percent", "step_interval_s"):
            if key in table:
                raise ConfigError(
                    f"{file}: [deploy] {key} is set beside strategy = {toml_value(strategy)}, a preset that already "
                    "fixes it",
                    f"remove {key}, or write strategy = {toml_value(preset[0])} with your own steps",
                )
        chosen, percent, interval = preset
        table = {**table, "strategy": chosen, "step_percent": percent, "step_interval_s": interval}
    elif table.get("step_percent") == 100:
        raise refusal(file, section, "step_percent", table, STEP_PERCENT, "10")
    try:
        return TypeAdapter(cls).validate_python(table, context={"roots": (root, file.parent)})
    except ValidationError as exc:
        raise config_error(exc, cls, section, table, file) from None


def config_error(exc: ValidationError, cls: type[Any], section: str, values: dict[str, Any], file: Path) -> ConfigError:
    """pydantic's first error as the one line: loc gives the key, the field's description and example the rest."""
    error = min(exc.errors(), key=lambda error: error["type"] != "unexpected_keyword_argument")
    loc = list(error["loc"])
    while len(loc) > 1 and (entry := TABLE_ENTRIES.get(str(loc[0]))) is not None:  # an array of tables
        key, index = str(loc[0]), int(loc[1])
        cls, section, values, loc = entry, f"{section}.{key}[{index}]", values[key][index], loc[2:]
        check_table(file, section, values, cls.__pydantic_fields__)  # not a table, or an unknown key
    refused = error.get("ctx", {}).get("error")
    if not loc and isinstance(refused, RefusedError):
        return ConfigError(f"{file}: [{section}] {refused.problem}", refused.fix)
    key = str(loc[0])
    field = cls.__pydantic_fields__[key]
    wants, example = str(field.description), field.examples[0]
    if isinstance(refused, RefusedError):
        fix = refused.fix or f"write {key} = {example} under [{section}]{refused.fix_suffix}"
        return ConfigError(f"{file}: [{section}] {key} {refused.problem}", fix)
    if isinstance(values.get(key), str) and error["type"] == "tuple_type" and key not in TABLE_ENTRIES:
        example = f"[{toml_value(values[key])}]"  # a lone string is refused, not read letter by letter
    return refusal(file, section, key, values, wants, example)
