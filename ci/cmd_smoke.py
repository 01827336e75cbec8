"""`python -m ci smoke`: run build/layer.zip + build/function.zip under awslambdaric, like Lambda."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci.config import Config
from ci.paths import BuildPaths

HELP = "Run the built zips under AWS's runtime interface client, the way Lambda runs them."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", type=Path, help="layer zip (default: <build-dir>/layer.zip)")
    parser.add_argument("--function", type=Path, help="function zip (default: <build-dir>/function.zip)")
    parser.add_argument("--model", type=Path, help="model bundle (default: <build-dir>/model/model.joblib)")
    parser.add_argument("--events", type=Path, help="directory of event files (default: smoke.events)")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.reports import artifact_digests, write_report
    from ci.smoke.harness import run_smoke
    from ci.smoke.summary import render

    result = run_smoke(
        args.layer or paths.layer_zip,
        args.function or paths.function_zip,
        args.model or paths.model,
        config,
        paths,
        events_dir=args.events,
    )
    # The report vouches for the build's artifacts (deploy trusts it by their digests): a run on
    # other files (--layer/--function/--model) must not pass for them.
    built = artifact_digests(paths)
    foreign = sorted(name for name, digest in result.report["smoked_artifacts"].items() if built.get(name) != digest)
    if foreign:
        result.failures.append(
            f"smoked {', '.join(foreign)} other than the build's ({paths.build}): this report does not vouch for them"
        )
    report = write_report(paths, "smoke", not result.failures, result.report)
    print(render(result.report, result.failures))
    print(f"report: {report}")
    return 0 if not result.failures else 1
