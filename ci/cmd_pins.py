"""`python -m ci pins`: prove the model was trained with exactly the versions it runs with (see ci/pins/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci.config import Config
from ci.errors import CheckFailedError
from ci.paths import BuildPaths

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
    from ci.pins.checks import PinsInputs, run_pins
    from ci.pins.render import render
    from ci.reports import write_report

    model = (args.model or paths.model).resolve()
    manifest = (args.manifest or paths.model_manifest).resolve()
    # pins.json vouches for build/model/model.joblib (deploy trusts it); any other model gets its own report,
    # so checking a candidate never touches, or blocks, what the build's checks said.
    judged_build = model == paths.model.resolve() and manifest == paths.model_manifest.resolve()
    inputs = PinsInputs(
        training_lock=config.path(config.lock, "training_lock"),
        layer_lock=config.path(config.lock, "layer_lock"),
        model=model,
        manifest=manifest,
        target_python=config.target.runtime.python,
        root=config.root,
        installed=args.installed,
        deployed_model=paths.model if judged_build else None,
    )
    result = run_pins(inputs)
    print(render(result), flush=True)
    report = write_report(paths, "pins" if judged_build else "pins-adhoc", result.passed, result.to_dict())
    errors = result.errors()
    if errors:
        check, first = errors[0]
        raise CheckFailedError(
            f"{len(errors)} pin problem(s); first ({check}): {first.message}; details in {report}",
            first.fix or "see the findings above",
        )
    print(f"\nwrote {report}")
    return 0
