"""`python -m ci abi`: will every binary in the layer load on the target? (the check is ci/abi.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ci import logs
from ci.config import Config, Target
from ci.errors import CheckFailedError, PipelineError
from ci.paths import BuildPaths
from ci.reports import Finding, write_report

if TYPE_CHECKING:
    from ci.abi import AbiScan, Violation

logger = logging.getLogger(__name__)
HELP = "Check every ELF file of the layer against the target's architecture, glibc and Python ABI."
PIN_FIX = (
    "pin a version of {what} with a wheel for the target in requirements.in, "
    "then `python -m ci lock` and `python -m ci build`"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--zip", type=Path, default=None, help="layer zip to check (default: build/layer.zip)")
    source.add_argument("--tree", type=Path, default=None, help="check an unpacked directory instead of the zip")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci import unpacked_layers
    from ci.abi import scan_tree
    from ci.lock.lockfile import display_path
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
        # Snapshot, then judge: abi.json names exactly the bytes read, unpacked and checked entry by entry first.
        judged.append(take(paths, layer_zip, "layer.zip"))
        fix = "rebuild it with `python -m ci build`, or pass --tree DIR"
        with unpacked_layers.reading(paths.unpacked_layers, judged[0].path, fix) as root:
            scan = scan_tree(root, target)
    logs.result(logger, render_table(scan, target, source))
    layer_lock = config.lock.layer_lock
    report = write_report(
        paths,
        "abi",
        not scan.violations,
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
    if scan.violations:
        first = scan.violations[0]
        raise CheckFailedError(
            f"{len(scan.violations)} ABI violation(s) in {source}, e.g. {first.path} "
            f"({first.distribution or 'unknown distribution'}): {first.message}; details in {report}",
            "change the named distributions' pins in requirements.in to versions with wheels for the target, "
            "then `python -m ci lock` and `python -m ci build`",
        )
    logger.info(f"wrote {report}")
    return 0


def render_table(scan: AbiScan, target: Target, source: str) -> str:
    from ci.abi import version_text
    from ci.tables import text_table

    machines = ", ".join(f"{count} {name}" for name, count in sorted(scan.machines.items())) or "none"
    lines = [
        (
            f"ABI check of {source} for {target.runtime.name} {target.architecture} "
            f"(glibc {target.glibc}, extension tag {target.extension_suffix})"
        ),
        f"  {scan.files} files, {scan.elf_files} ELF ({machines}), {scan.extension_modules} extension modules",
    ]
    if scan.max_glibc is not None:
        lines.append(f"  newest GLIBC needed: {version_text(scan.max_glibc)} ({scan.max_glibc_file})")
        lines += [f"    {name:<28} GLIBC {version_text(v)}" for name, v in sorted(scan.glibc_by_distribution.items())]
    if not scan.violations:
        return "\n".join([*lines, "  no violations"])
    rows = [(v.rule, v.distribution or "?", v.path, v.message) for v in scan.violations]
    table = text_table(("RULE", "DISTRIBUTION", "FILE", "PROBLEM"), rows, indent="  ", rule=False)
    return "\n".join([*lines, f"  {len(scan.violations)} violation(s):", table])


def abi_findings(violations: list[Violation], layer_lock: Path, lock_display: str) -> list[Finding]:
    """One finding per distribution, on its pin in the layer lock: the fix is a different pin, not a file in the zip."""
    from ci.lock.lockfile import read_lock

    by_distribution: dict[str, list[Violation]] = {}
    for violation in violations:
        by_distribution.setdefault(violation.distribution or "", []).append(violation)
    try:
        lock = read_lock(layer_lock)
        lines = {name: pin.line for name in by_distribution if name and (pin := lock.get(name)) is not None}
    except PipelineError:
        lines = {}
    findings = []
    for distribution, group in by_distribution.items():
        first = group[0]
        message = (
            f"{distribution or 'a file of no known distribution'}: {len(group)} file(s) will not load on the "
            f"target; e.g. {first.path} ({first.rule}): {first.message}"
        )
        fix = PIN_FIX.format(what=distribution or "the distribution that ships it")
        findings.append(Finding("abi", "error", message, fix, lock_display, lines.get(distribution)))
    return findings
