"""`python -m ci bench`: this build against a naive pip --target layer, side by side."""

from __future__ import annotations

import argparse

from ci.config import Config
from ci.paths import BuildPaths

FIX = "compare the variants in build/reports/bench.json and change the build rules that cost the target"
HELP = "Measure this build against a naive pip --target layer, side by side."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per cold-start median (>= 5)")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.bench.run import run_bench
    from ci.bench.table import render_table
    from ci.reports import Finding, write_report

    result = run_bench(config, paths, runs=args.runs)
    passed = all(check["met"] for check in result["checks"])
    print(render_table(result))
    findings = [
        Finding("bench", "error", f"target missed: {c['target']} (measured {c['value']})", FIX)
        for c in result["checks"]
        if not c["met"]
    ]
    print(f"\nreport: {write_report(paths, 'bench', passed, result, findings=findings)}")
    return 0 if passed else 1
