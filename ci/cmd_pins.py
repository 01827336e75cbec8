"""`python -m ci pins`: prove the model was trained with exactly the versions it runs with (see ci/pins/)."""

import argparse
import logging
from pathlib import Path

from ci import logs
from ci.config import Config
from ci.errors import CheckFailedError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Prove the model was trained with exactly the library versions it will run with."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="model artifact (default: build/model/model.joblib)")
    parser.add_argument("--manifest", type=Path, default=None, help="its manifest (default: build/model/model.json)")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="also compare the versions installed in this environment with the training lock",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.lock.lockfile import display_path
    from ci.pins.check import PinsInputs, render, run_pins
    from ci.reports import Finding, report_name, write_report
    from ci.snapshot import Snapshot, take

    model = (args.model or paths.model).resolve()
    manifest = (args.manifest or paths.model_manifest).resolve()
    # Any model or manifest other than the build's gets pins-adhoc.json (ci.reports.report_name): pins.json vouches
    # for what deploy uploads. Snapshot, then judge: the scan reads only this copy, the report names its digest.
    inputs_given = {"model.joblib": model, "model.json": manifest}
    judged: list[Snapshot] = [take(paths, model, "model.joblib")] if model.is_file() else []
    result = run_pins(
        PinsInputs(
            training_lock=config.lock.training_lock,
            layer_lock=config.lock.layer_lock,
            model=judged[0].path if judged else model,
            manifest=manifest,
            target_python=config.target.runtime.python,
            root=config.root,
            installed=args.installed,
            deployed_model=paths.model if report_name(paths, "pins", inputs_given) == "pins" else None,
            shown_model=model,
        )
    )
    logs.result(logger, render(result))
    # Findings without a file land on the training lock, through which every pin fix (relock or retrain) goes.
    training_display = display_path(config.lock.training_lock, config.root)
    level = {"error": "error", "warning": "warning", "note": "notice"}
    findings = [
        Finding("pins", level[f.severity], f"{check.name}: {f.message}", f.fix, f.file or training_display, f.line)
        for check in result.checks
        for f in check.findings
    ]
    report = write_report(paths, "pins", result.passed, result.to_dict(), findings, judged=judged, inputs=inputs_given)
    errors = [(check.name, f) for check in result.checks for f in check.findings if f.severity == "error"]
    if errors:
        check, first = errors[0]
        raise CheckFailedError(
            f"{len(errors)} pin problem(s); first ({check}): {first.message}; details in {report}",
            first.fix or "see the findings above",
        )
    logger.info(f"\nwrote {report}")
    return 0
