"""`python -m ci bench`: this build against a naive pip --target layer; `--ci`: set-up, pipeline, checks and tests."""

import argparse
import logging

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths

FIX = "compare the variants in build/reports/bench.json and change the build rules that cost the target"
CI_FIX = "see the slowest steps in build/reports/bench-ci.json; run `pytest --durations=25` for make test"
logger = logging.getLogger(__name__)
HELP = "Measure this build against a naive pip --target layer, side by side."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per cold-start median (>= 5)")
    parser.add_argument(
        "--ci",
        action="store_true",
        help="instead: make venv cold and warm, a fresh clone's pipeline, each check job, make test (bench-ci.json)",
    )
    parser.add_argument("--no-test", action="store_true", help="with --ci: leave out make test")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.bench import render_ci_table, render_table, run_bench, run_bench_ci
    from ci.reports import Finding, write_report

    if args.ci:
        result = run_bench_ci(config.root, paths.cache, with_test=not args.no_test)
        check, text, fix = "bench-ci", render_ci_table(result), CI_FIX
        rows = [row for row in result["rows"] if row["met"] is False]
        missed = [f"{row['measurement']} took {row['seconds']} s (target <= {row['target_s']} s)" for row in rows]
    else:
        result = run_bench(config, paths, runs=args.runs)
        check, text, fix = "bench", render_table(result), FIX
        missed = [f"{goal['target']} (measured {goal['value']})" for goal in result["checks"] if not goal["met"]]
    findings = [Finding(check, "error", f"target missed: {what}", fix) for what in missed]
    logs.result(logger, text)
    logger.info(f"\nreport: {write_report(paths, check, not findings, result, findings=findings)}")
    return 1 if findings else 0
