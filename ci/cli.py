"""`python -m ci <command>`: parses options and hands over to one thin module per command.

Each command module (ci/cmd_<name>.py) defines HELP, add_arguments(parser) and
run(args, config, paths) -> int. Modules are imported only when their command runs, so a
slow or heavy import in one command never slows the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ci.config import load_config
from ci.errors import PipelineError
from ci.paths import REPO_ROOT, BuildPaths

COMMANDS: dict[str, str] = {
    "lock": "Resolve requirements.in for the Lambda target into requirements-layer.txt (and --check it).",
    "build": "Install the lock for the target, prune, verify, and write build/layer.zip and build/function.zip.",
    "abi": "Check every ELF file of the layer against the target's architecture, glibc and Python ABI.",
    "budget": "Count what Lambda counts against the 262,144,000-byte unzipped limit and write the size report.",
    "pins": "Prove the model was trained with exactly the library versions it will run with.",
    "smoke": "Run the built zips under AWS's runtime interface client, the way Lambda runs them.",
    "deploy": "Upload the verified artifacts, publish layer and function versions, move the alias.",
    "rollback": "Move the alias back to the previous (or a given) function version and verify it.",
    "bootstrap": "Create the CloudFormation stack (bucket, roles) on the configured AWS endpoint.",
    "bench": "Measure this build against a naive pip --target layer, side by side.",
}


def _module_name(command: str) -> str:
    return f"ci.cmd_{command}"


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ci",
        description="The forgetting-curve model's Lambda build, checks and deployment.",
    )
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build", help="outputs (default: build/)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="download cache (default: <build-dir>/cache)")
    parser.add_argument(
        "--config", type=Path, default=None, help="configuration file (default: pipeline.toml at the repository root)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(_module_name(name)).add_arguments(child)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    build_dir = args.build_dir.resolve()
    paths = BuildPaths(build=build_dir, cache=(args.cache_dir or build_dir / "cache").resolve())
    try:
        config = load_config(file=args.config.resolve() if args.config else None)
        module = importlib.import_module(_module_name(args.command))
        return int(module.run(args, config, paths))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
