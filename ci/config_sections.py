"""pipeline.toml's sections as frozen dataclasses, each built (and checked) by one parse function.

A dataclass's fields are exactly the keys its section allows; its parse function holds the
types, ranges, allowed values and defaults, so every reader gets checked, typed values and no
reader repeats a default. Paths are resolved against the repository root.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ci.config_schema import REQUIRED, Table, toml_value
from ci.errors import ConfigError
from ci.site.owners import canonical as canonicalize_name
from ci.site.rules import RULES, STRIP

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: function code + all layers, unzipped (fixed by Lambda)
LAMBDA_INIT_LIMIT_S = 10.0  # an on-demand function's init phase (fixed by Lambda)
PRUNE_RULES = (*RULES, STRIP)
BYTECODE_MODES = ("runtime", "all", "none")
# Where training and the tools run (GitHub's ubuntu runner, this host), unless [lock] says otherwise.
# The host's Python is not a setting: it is the target runtime's (ci/python.py finds it).
HOST_PLATFORM = "x86_64-manylinux_2_17"
_KEY_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._-]+"  # one segment of an S3 key prefix: not "." nor ".."


def keys(cls: type) -> tuple[str, ...]:
    """The keys a section allows: its dataclass's fields."""
    return tuple(spec.name for spec in fields(cls))


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    handler: str  # package.module.function
    memory_mb: int
    timeout_s: int
    alias: str
    layer_name: str
    snapstart: bool  # publish versions with SnapStart (python3.12+; checked against [target] in ci/config.py)


def parse_function(table: Table) -> FunctionConfig:
    name = r"[A-Za-z0-9_-]{1,64}"
    return FunctionConfig(
        name=table.text("name", '"forgetting-curve"', pattern=name, wants=f"a Lambda function name ({name})"),
        handler=table.text(
            "handler",
            '"handler.app.lambda_handler"',
            pattern=r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+",
            wants="package.module.function of the handler",
        ),
        memory_mb=table.integer("memory_mb", 512, 128, 10240, unit="MB (Lambda's range)"),
        timeout_s=table.integer("timeout_s", 60, 1, 900, unit="seconds (Lambda's range)"),
        alias=table.text("alias", '"live"', pattern=r"[A-Za-z][A-Za-z0-9_-]{0,127}", wants="an alias name"),
        layer_name=table.text(
            "layer_name", '"forgetting-curve-runtime"', pattern=r"[A-Za-z0-9_-]{1,140}", wants="a layer name"
        ),
        snapstart=table.flag("snapstart", default=False),
    )


@dataclass(frozen=True)
class LockConfig:
    requirements_in: Path
    layer_lock: Path
    training_in: Path
    training_lock: Path
    pipeline_in: Path  # what `make pipeline` and the verify jobs install: training set + `python -m ci`
    pipeline_lock: Path
    dev_in: Path  # linters, test tools, emulators: installed beside the pipeline lock by `make test`
    dev_lock: Path
    bootstrap_lock: Path  # uv alone, with the pipeline lock's hashes: what creates the venvs
    index_url: str
    host_platform: str  # uv's --python-platform for the training, pipeline and dev locks
    # Packages the runtime provides that the layer ships anyway (canonical names; checked against the
    # runtime in ci/config.py): the layer then decides their version, not AWS's runtime updates.
    bundle_runtime_packages: tuple[str, ...]
    allow_insecure_index: bool  # an http:// or file:// index_url (a local mirror, a test index): named, never silent


def roots(table: Table, root: Path) -> tuple[Path, Path]:
    """Where a configured path may point: the repository, or beside the configuration file itself."""
    return (root, table.file.parent)


def parse_lock(table: Table, root: Path) -> LockConfig:
    def path(key: str, example: str, optional: bool = False) -> Path:
        """`optional`: keys added later default to their example, so an older pipeline.toml still loads."""
        return table.path(key, f'"{example}"', roots(table, root), default=example if optional else REQUIRED)

    insecure = table.flag("allow_insecure_index", default=False)

    return LockConfig(
        requirements_in=path("requirements_in", "requirements.in"),
        layer_lock=path("layer_lock", "requirements-layer.txt"),
        training_in=path("training_in", "training/requirements.in"),
        training_lock=path("training_lock", "training/requirements.txt"),
        pipeline_in=path("pipeline_in", "requirements-pipeline.in", optional=True),
        pipeline_lock=path("pipeline_lock", "requirements-pipeline.txt", optional=True),
        dev_in=path("dev_in", "requirements-dev.in"),
        dev_lock=path("dev_lock", "requirements-dev.txt"),
        bootstrap_lock=path("bootstrap_lock", "requirements-bootstrap.txt", optional=True),
        index_url=table.text(
            "index_url",
            '"https://pypi.org/simple"',
            pattern=r"(https?|file)://\S+" if insecure else r"https://\S+",
            wants="an http(s) or file:// URL of a simple index"
            if insecure
            else "an https:// URL of a simple index (http:// or file:// only with allow_insecure_index = true)",
        ),
        host_platform=table.text("host_platform", f'"{HOST_PLATFORM}"', default=HOST_PLATFORM),
        bundle_runtime_packages=tuple(
            canonicalize_name(name) for name in table.texts("bundle_runtime_packages", '["urllib3"]', default=())
        ),
        allow_insecure_index=insecure,
    )


@dataclass(frozen=True)
class BuildConfig:
    prune: tuple[str, ...]  # rule names of ci/site/rules.py (and "strip"), applied in this order
    bytecode: str  # runtime | all | none
    sourceless: bool
    prune_unimported: bool
    keep: tuple[str, ...]  # path globs (relative to python/) no rule may remove
    remove: tuple[str, ...] = ()  # path globs (relative to python/) the build removes; keep wins over them


def parse_build(table: Table) -> BuildConfig:
    return BuildConfig(
        prune=table.texts("prune", '["tests", "docs"]', default=PRUNE_RULES, choices=PRUNE_RULES),
        bytecode=table.choice("bytecode", BYTECODE_MODES, default="runtime"),
        sourceless=table.flag("sourceless", default=False),
        prune_unimported=table.flag("prune_unimported", default=False),
        keep=table.globs("keep", '["sklearn/datasets/*"]', default=()),
        remove=relative_globs(table, "remove", '["sklearn/cluster/*"]'),
    )


def relative_globs(table: Table, key: str, example: str) -> tuple[str, ...]:
    """Path globs under python/: relative, never climbing out of it (`..`), never absolute."""
    globs = table.texts(key, example, default=())
    for glob in globs:
        parts = glob.replace("\\", "/").split("/")
        why = (
            "is absolute" if glob.startswith(("/", "\\")) else
            "climbs out of python/ with .." if ".." in parts else
            "is empty" if not glob.strip("/ ") else ""
        )  # fmt: skip
        if why:
            raise ConfigError(
                f"{table.file}: [{table.name}] {key} names {toml_value(glob)}, which {why}: each must be a path "
                "glob relative to the layer's python/ folder",
                f"write {key} = {example} under [{table.name}]",
            )
    return globs


@dataclass(frozen=True)
class ExtraLayerArn:
    """A layer attached by ARN: not in our hands, so its unzipped size is declared."""

    arn: str
    unzipped_bytes: int


@dataclass(frozen=True)
class BudgetConfig:
    limit_bytes: int
    warn_fraction: float
    extra_layer_zips: tuple[Path, ...]
    extra_layer_arns: tuple[ExtraLayerArn, ...]


def parse_budget(table: Table, root: Path) -> BudgetConfig:
    example = '[{ arn = "arn:aws:lambda:us-east-1:123456789012:layer:NAME:3", unzipped_bytes = 12345678 }]'
    arns = tuple(
        ExtraLayerArn(
            arn=entry.text(
                "arn",
                '"arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION"',
                pattern=r"arn:\S*:layer:\S+",
                wants="a layer version's ARN",
            ),
            unzipped_bytes=entry.integer("unzipped_bytes", 12345678, 1, LAMBDA_UNZIPPED_LIMIT, unit="bytes"),
        )
        for entry in table.tables("extra_layer_arns", example, keys(ExtraLayerArn))
    )
    return BudgetConfig(
        limit_bytes=table.integer(
            "limit_bytes", LAMBDA_UNZIPPED_LIMIT, 1, LAMBDA_UNZIPPED_LIMIT, unit="bytes (Lambda's fixed unzipped limit)"
        ),
        warn_fraction=table.number("warn_fraction", 0.9, above=0, maximum=1, default=0.9),
        extra_layer_zips=table.paths("extra_layer_zips", '["vendor/otel.zip"]', roots(table, root), ()),
        extra_layer_arns=arns,
    )


@dataclass(frozen=True)
class SmokeConfig:
    events: Path
    warm_invocations: int
    warm_event: str  # "" = a single successful prediction, chosen by the harness
    init_limit_s: float


def parse_smoke(table: Table, root: Path) -> SmokeConfig:
    return SmokeConfig(
        events=table.path("events", '"tests/events"', roots(table, root)),
        warm_invocations=table.integer("warm_invocations", 20, 0),
        warm_event=table.text("warm_event", '"direct-single"', default="", pattern=".*", wants="an event name"),
        init_limit_s=table.number("init_limit_s", 10.0, above=0, maximum=LAMBDA_INIT_LIMIT_S),
    )


@dataclass(frozen=True)
class DeployConfig:
    bucket: str
    region: str
    stack_name: str
    key_prefix: str
    github_repository: str  # "" = none; bootstrap then needs --github-repository
    check_warm_invocations: int  # warm invocations in the post-deploy check
    strategy: str  # all-at-once | canary | linear (a SAM preset name is resolved to one of these)
    step_percent: int  # the share of traffic each step moves to the new version
    step_interval_s: int  # the wait between steps, alarms read throughout
    alarms: tuple[str, ...]  # CloudWatch alarms watched during a shift besides the stack's own


STRATEGIES = ("all-at-once", "canary", "linear")
# SAM's DeploymentPreference types (CodeDeploy's predefined configurations): strategy, percent, interval.
PRESETS = {
    "AllAtOnce": ("all-at-once", 100, 0),
    **{f"Canary10Percent{m}Minutes": ("canary", 10, m * 60) for m in (5, 10, 15, 30)},
    **{f"Linear10PercentEvery{m}Minute{'s' if m > 1 else ''}": ("linear", 10, m * 60) for m in (1, 2, 3, 10)},
}


MAX_SHIFT_S = 40 * 60  # the deploy job's timeout-minutes is 60; the rest of the deploy needs the remainder


def shift_seconds(strategy: str, step_percent: int, step_interval_s: int) -> int:
    """How long a shift waits in total: one interval per step before the new version takes everything."""
    steps = {"canary": 1, "linear": len(range(step_percent, 100, step_percent))}.get(strategy, 0)
    return steps * step_interval_s


def parse_strategy(table: Table) -> tuple[str, int, int]:
    chosen = read_strategy(table)
    if shift_seconds(*chosen) > MAX_SHIFT_S:
        raise ConfigError(
            f"{table.file}: [{table.name}] strategy {chosen[0]} with {chosen[1]}% steps every {chosen[2]}s shifts "
            f"for {shift_seconds(*chosen) // 60} minutes, longer than the {MAX_SHIFT_S // 60} a deploy job allows",
            "take larger steps or a shorter step_interval_s (the deploy job's timeout-minutes is 60)",
        )
    return chosen


def read_strategy(table: Table) -> tuple[str, int, int]:
    """(strategy, step_percent, step_interval_s): explicit keys, or a SAM preset that sets all three."""
    strategy = table.choice("strategy", (*STRATEGIES, *PRESETS), default="all-at-once")
    if strategy in PRESETS:
        for key in ("step_percent", "step_interval_s"):
            if key in table.values:
                raise ConfigError(
                    f"{table.file}: [{table.name}] {key} is set beside strategy = {toml_value(strategy)}, "
                    "a preset that already fixes it",
                    f"remove {key}, or write strategy = {toml_value(PRESETS[strategy][0])} with your own steps",
                )
        return PRESETS[strategy]
    percent = table.integer("step_percent", 10, 1, 99, default=10, unit="percent")
    interval = table.integer("step_interval_s", 300, 0, 3600, default=300, unit="seconds")
    return strategy, percent, interval


def parse_deploy(table: Table) -> DeployConfig:
    strategy, step_percent, step_interval_s = parse_strategy(table)
    return DeployConfig(
        bucket=table.text(
            "bucket",
            '"forgetting-curve-artifacts"',
            pattern=r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
            wants="an S3 bucket name",
        ),
        region=table.text("region", '"us-east-1"', pattern=r"[a-z]{2}(-[a-z]+)+-\d+", wants="an AWS region"),
        stack_name=table.text(
            "stack_name", '"forgetting-curve"', pattern=r"[A-Za-z][A-Za-z0-9-]{0,127}", wants="a stack name"
        ),
        key_prefix=table.text(
            "key_prefix",
            '"artifacts"',
            pattern=rf"{_KEY_SEGMENT}(/{_KEY_SEGMENT})*",
            wants="an S3 key prefix of plain segments ([A-Za-z0-9._-], not '.' or '..') separated by single '/'",
        ),
        github_repository=table.text(
            "github_repository", '"OWNER/NAME"', default="", pattern=r"([\w.-]+/[\w.-]+)?", wants="OWNER/NAME"
        ),
        check_warm_invocations=table.integer("check_warm_invocations", 0, 0, default=0),
        strategy=strategy,
        step_percent=step_percent,
        step_interval_s=step_interval_s,
        alarms=table.texts("alarms", '["my-team-5xx"]', default=()),
    )


@dataclass(frozen=True)
class TrainingConfig:
    seed: int
    learners: int
    items: int
    reviews: int
    test_fraction: float
    max_log_loss_ratio: float  # model log loss / constant baseline's must stay below this
    min_roc_auc: float
    max_mae: float  # against the simulator's true p (skipped for data without p_true)
    max_ece: float
    max_history_error: float  # |model - simulator's true recall| at each reference history (simulated data only)


def parse_training(table: Table) -> TrainingConfig:
    return TrainingConfig(
        seed=table.integer("seed", 20161, 0),
        learners=table.integer("learners", 400, 1),
        items=table.integer("items", 300, 1),
        reviews=table.integer("reviews", 60000, 1),
        test_fraction=table.number("test_fraction", 0.2, above=0, below=1),
        max_log_loss_ratio=table.number("max_log_loss_ratio", 0.85, above=0),
        min_roc_auc=table.number("min_roc_auc", 0.7, minimum=0, maximum=1),
        max_mae=table.number("max_mae", 0.08, minimum=0),
        max_ece=table.number("max_ece", 0.05, minimum=0),
        max_history_error=table.number("max_history_error", 0.05, minimum=0, maximum=1),
    )
