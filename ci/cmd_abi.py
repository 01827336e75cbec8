"""`python -m ci abi`: will every binary in the layer load on the target? (see ci/abi/)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ci import logs
from ci.config import Config
from ci.errors import CheckFailedError, PipelineError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Check every ELF file of the layer against the target's architecture, glibc and Python ABI."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--zip", type=Path, default=None, help="layer zip to check (default: build/layer.zip)")
    source.add_argument("--tree", type=Path, default=None, help="check an unpacked directory instead of the zip")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.abi.check import scan_tree
    from ci.abi.findings import abi_findings
    from ci.abi.render import render_table
    from ci.abi.source import unpacked
    from ci.lock.files import display_path
    from ci.reports import write_report
    from ci.snapshot import Snapshot, take

    target = config.target
    judged: list[Snapshot] = []
    if args.tree is not None:
        if not args.tree.is_dir():
            raise PipelineError(
                f"{args.tree} not found or not a directory", "pass the folder that holds python/ (or use --zip)"
            )
        source = str(args.tree)
        scan = scan_tree(args.tree, target)
    else:
        layer_zip = args.zip or paths.layer_zip
        source = str(layer_zip)
        if not layer_zip.is_file():
            raise PipelineError(f"{layer_zip} not found", "run `python -m ci build` first, or pass --tree DIR")
        # Snapshot, then judge: only the snapshot's bytes are read, and abi.json names exactly them.
        judged.append(take(paths, layer_zip, "layer.zip"))
        with unpacked(judged[0].path, paths.unpacked_layers) as root:
            scan = scan_tree(root, target)
    logs.result(logger, render_table(scan, target, source))
    layer_lock = config.lock.layer_lock
    report = write_report(
        paths,
        "abi",
        scan.passed,
        {
            "source": source,
            "source_sha256": judged[0].sha256 if judged else None,
            "target": {
                "runtime": target.runtime.name,
                "architecture": target.architecture,
                "glibc": target.glibc,
                "extension_suffix": target.extension_suffix,
            },
            **scan.to_dict(),
        },
        findings=abi_findings(scan.violations, layer_lock, display_path(layer_lock, config.root)),
        judged=judged,
        inputs={"layer.zip": args.tree or args.zip},  # another zip or a tree: abi-adhoc.json
    )
    if not scan.passed:
        first = scan.violations[0]
        raise CheckFailedError(
            f"{len(scan.violations)} ABI violation(s) in {source}, e.g. {first.path} "
            f"({first.distribution or 'unknown distribution'}): {first.message}; details in {report}",
            "change the named distributions' pins in requirements.in to versions with wheels for the target, "
            "then `python -m ci lock` and `python -m ci build`",
        )
    logger.info(f"wrote {report}")
    return 0
