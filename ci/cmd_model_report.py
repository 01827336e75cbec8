"""`python -m ci model-report`: this checkout's model against the base branch's (see ci/model_report.py).
Exit 0 whenever the report is written, also without a base (the report says why): it informs a reviewer, training's
own gate judges quality. Exit 1 when this checkout's model is missing or unreadable, or pipeline.toml is invalid."""

import argparse
import logging
import os

from ci import logs
from ci.config import Config
from ci.paths import BuildPaths

NAME = "model-report"
logger = logging.getLogger(__name__)
HELP = (
    "Compare this checkout's model with the base branch's, trained the same way from the base's code: "
    "metrics, deltas, the gate's thresholds and a recall chart (model-report.json and .md)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-ref",
        metavar="REF",
        help="the commit to compare with (default: the merge-base of HEAD with origin/main or main; "
        "HEAD when the working tree changes training/, pipeline.toml or the training lock)",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.model_report import base_model, compare, read_manifest, render
    from ci.reports import Finding, write_report

    read_manifest(paths.model_dir, "this checkout's model")  # before any work on the base
    work = paths.build / "model-base"
    base = base_model(config.root, work, paths.model_dir, config.file, config.lock.training_lock, args.base_ref)
    comparison = compare(paths.model_dir, base.model_dir, config.training, config.smoke.events)
    markdown = render(comparison, base)
    findings = (
        [Finding(NAME, "warning", f"no base model to compare with: {base.reason}", base.fix)] if base.reason else []
    )
    report = write_report(paths, NAME, True, {"base": base.to_dict(), **comparison.to_dict()}, findings=findings)
    markdown_path = paths.reports / f"{NAME}.md"
    partial = markdown_path.with_name(f".{markdown_path.name}.{os.getpid()}.partial")  # never a torn report
    partial.write_text(markdown + "\n", encoding="utf-8")
    partial.replace(markdown_path)
    logs.result(logger, markdown)
    logger.info(f"wrote {report}\nwrote {markdown_path}")
    return 0
