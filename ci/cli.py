"""`python -m ci [-v|-q] [--build-dir D] [--cache-dir D] [--config F] <command> ...`: each ci/cmd_<name>.py defines
HELP, add_arguments and run(args, config, paths), importing its heavy code in run() so --help stays fast."""

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from ci.config import load_config
from ci.errors import FAILED, INTERRUPTED, MISSING_ENVIRONMENT, USAGE, ConfigError, PipelineError
from ci.logs import add_verbosity_options, configure
from ci.paths import REPO_ROOT, BuildPaths
from ci.python import missing_module, repository_of

# In the order a pipeline runs them (and --help lists them); model-report follows `python -m training`.
COMMANDS = "lock model_report build abi budget pins smoke deploy status rollback reset_local unlock bootstrap bench"
COMMAND_MODULES: tuple[ModuleType, ...] = tuple(importlib.import_module(f"ci.cmd_{name}") for name in COMMANDS.split())

# What `make pipeline` runs, in order (the workflows run the same): --help prints it.
PIPELINE_STEPS = (
    ("python -m ci lock --check", "the locks are current and every pin has a wheel for the target"),
    ("python -m training", "train the model: build/model/model.joblib + model.json, or refuse it"),
    ("python -m ci model-report", "this model against the base branch's: metrics, checks, a recall chart"),
    ("python -m ci build", "build/layer.zip + function.zip, pruned and proven to import"),
    ("python -m ci abi", "every binary loads on the target"),
    ("python -m ci budget", "function + layers fit Lambda's unzipped limit"),
    ("python -m ci pins --installed", "the model was trained with the versions it will run with"),
    ("python -m ci smoke", "the exact zips answer every committed event under awslambdaric"),
    ("python -m ci deploy", "upload, publish, check, move the alias"),
)


def command_name(module: ModuleType) -> str:
    """cmd_model_report.py is `model-report`."""
    return module.__name__.rpartition(".cmd_")[2].replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    width = max(len(command) for command, _ in PIPELINE_STEPS)
    steps = [f"  {n}. {command:<{width}}  {what}" for n, (command, what) in enumerate(PIPELINE_STEPS, 1)]
    parser = argparse.ArgumentParser(
        prog="python -m ci",
        description="The forgetting-curve model's Lambda build, checks and deployment.",
        epilog="the pipeline, in order (`make pipeline` runs it; so do the workflows):\n" + "\n".join(steps),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbosity_options(parser)
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build", help="outputs (default: build/)")
    parser.add_argument("--cache-dir", type=Path, help="download cache (default: <build-dir>/cache)")
    parser.add_argument("--config", type=Path, help="configuration file (default: <repository>/pipeline.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:  # each command's help, options, and itself as the handler
        child = subparsers.add_parser(command_name(module), help=module.HELP, description=module.HELP)
        module.add_arguments(child)
        child.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    what = "python -m ci"
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        what = f"python -m ci {command_name(args.module)}"
        configure(args.verbosity)
        here = repository_of(Path.cwd())
        if here is not None and here.resolve() != REPO_ROOT:
            raise PipelineError(  # noqa: TRY301  (reported like every other PipelineError below)
                f"the working directory is in the repository {here}, but this `python -m ci` is {REPO_ROOT}'s",
                f"run `{here}/.venv/bin/python -m ci {command_name(args.module)} ...` (`make venv` there creates it)",
            )
        build_dir = args.build_dir.resolve()
        paths = BuildPaths(build=build_dir, cache=(args.cache_dir or build_dir / "cache").resolve())
        config = load_config(file=args.config.resolve() if args.config else None)  # checked before any work
        return int(args.module.run(args, config, paths))
    except PipelineError as exc:  # a configuration mistake is a usage error, as argparse's are
        print(f"error: {exc}", file=sys.stderr)
        return USAGE if isinstance(exc, ConfigError) else FAILED
    except ModuleNotFoundError as exc:  # a Python without the project's environment: how to run it, no traceback
        print(f"error: {missing_module(what.removeprefix('python -m '), exc)}", file=sys.stderr)
        return MISSING_ENVIRONMENT
    except KeyboardInterrupt:
        # Ctrl-C is a decision, not a crash: one line, the shell's exit status for SIGINT (128 + 2).
        print(f"interrupted: `{what}` stopped by Ctrl-C before it finished; rerun it", file=sys.stderr)
        return INTERRUPTED
