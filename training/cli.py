"""`python -m training [-v|-q] [--out-dir DIR] [--data CSV] [--seed N] [--config TOML]`: parse, run, report."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ci import logs
from ci.errors import USAGE, ConfigError
from training.errors import TrainingError
from training.settings import DEFAULT_CONFIG, REPO_ROOT, events_dir, load_settings

logger = logging.getLogger(__name__)


def seed_argument(text: str) -> int:
    """numpy and scikit-learn take seeds from 0 to 2**32-1, as [training] seed of pipeline.toml."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} is not a seed: use a whole number from 0 to 4294967295")
    return value


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the forgetting-curve model (p(recall)) and write model.joblib + model.json. "
        "Step 2 of `make pipeline`: after `python -m ci lock --check`, before `python -m ci build` "
        "(`python -m ci --help` lists every step).",
    )
    logs.add_verbosity_options(cli)
    cli.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "model", help="default: build/model")
    cli.add_argument("--data", type=Path, default=None, help="a review-log CSV (default: the HLR simulator)")
    cli.add_argument(
        "--seed", type=seed_argument, default=None, help="0 to 2**32-1; default: training.seed of pipeline.toml"
    )
    cli.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="default: pipeline.toml")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.verbosity, name="training")
    try:
        from training.train import run  # heavy imports after argument parsing
    except ModuleNotFoundError as exc:  # not the project's environment: how to run it, no traceback
        from ci.python import missing_module

        print(f"error: {missing_module('training', exc)}", file=sys.stderr)
        return 3

    started = time.perf_counter()
    try:
        settings = load_settings(args.config)
        seed = settings.seed if args.seed is None else args.seed
        result = run(settings, args.out_dir, seed, args.data, events_dir(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    metrics = result.manifest["metrics"]
    logger.info(
        f"wrote {result.model_path} ({result.model_path.stat().st_size} bytes, sha256 {result.manifest['sha256'][:12]})"
    )
    logger.info(f"wrote {result.manifest_path}")
    logs.result(logger, "held-out: " + ", ".join(f"{name} {value}" for name, value in metrics.items()))
    monotonic, answers = result.manifest["checks"]["monotonic"], result.manifest["answers"]
    logger.info(
        f"contract: recall never rises with elapsed time on {monotonic['histories']} histories; "
        f"answered {len(answers['by_event'])} committed events ({answers['events']}) for smoke to reproduce"
    )
    logger.info(f"trained in {time.perf_counter() - started:.1f} s")
    return 0
