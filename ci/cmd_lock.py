"""`python -m ci lock [--check]`: the layer lock, resolved for the Lambda target (see ci/lock/)."""

import argparse
import dataclasses
import logging

from ci import logs
from ci.config import Config
from ci.paths import REPO_ROOT, BuildPaths

logger = logging.getLogger(__name__)
HELP = "Resolve requirements.in for the Lambda target into requirements-layer.txt (and --check it)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="change nothing; fail if a lock is stale, unpinned, unhashed or unfit"
    )
    parser.add_argument(
        "--no-resolve", action="store_true", help="with --check: skip the fresh uv resolve compared byte for byte"
    )
    parser.add_argument(
        "--offline", action="store_true", help="with --check: no network (cached PyPI answers only, no resolve)"
    )
    parser.add_argument("--refresh", action="store_true", help="refetch PyPI answers instead of using build/cache")
    parser.add_argument(
        "--upgrade",
        nargs="*",
        default=None,
        metavar="PACKAGE",
        help="re-resolve every lock allowing upgrades: all packages, or only the named ones (an exact pin in an "
        ".in file, like scikit-learn==1.3.2, moves only when named); reports old -> new and what held a package back",
    )
    parser.add_argument(
        "-P", "--upgrade-package", action="append", default=[], metavar="NAME", help="same as --upgrade NAME"
    )
    parser.add_argument(
        "--runtime-packages",
        action="store_true",
        help="regenerate ci/policy/runtime-<runtime>.txt for every runtime in lambda_runtimes.json (nothing else)",
    )


def upgrade_request(upgrade: list[str] | bool | None, packages: list[str]) -> tuple[str, ...] | None:
    """None: no upgrade; (): everything; else the named packages (a workflow input may hold several)."""
    if (upgrade is None or upgrade is False) and not packages:
        return None
    given = [*(upgrade if isinstance(upgrade, list) else []), *packages]
    return tuple(name for text in given for name in text.replace(",", " ").split())


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.errors import PipelineError
    from ci.lock.check import LockCheckError, check_direct_pins, check_locks
    from ci.lock.lockfile import display_path
    from ci.lock.resolve import compile_all, read_notes
    from ci.pip import SimpleIndex
    from ci.reports import Finding, write_report

    index = SimpleIndex(config.lock.index_url, paths.cache / "pypi-simple", refresh=args.refresh, offline=args.offline)
    uv_cache = paths.cache / "uv"
    if getattr(args, "runtime_packages", False):  # callers may build the Namespace by hand
        from ci.config import load_policy
        from ci.lock.resolve import generate, runtime_file

        for name, policy in sorted(load_policy().items()):
            output = runtime_file(name)
            changed = generate(policy, config.lock.index_url, output, uv_cache)
            logs.result(logger, f"{display_path(output, REPO_ROOT)}: {'rewritten' if changed else 'unchanged'}")
        return 0
    upgrade = upgrade_request(args.upgrade, args.upgrade_package)
    if args.check and upgrade is not None:
        raise PipelineError("--check changes nothing; --upgrade rewrites the locks", "use one or the other")
    # One message before uv's resolver trace (scikit-learn 1.3.2 on python3.13); a package named to move is not held.
    check_direct_pins(config, index, moving=upgrade or ())
    target = config.target
    if upgrade is not None:
        from ci.lock.upgrade import upgrade_locks

        fresh_index = SimpleIndex(config.lock.index_url, paths.cache / "pypi-simple")
        upgraded = upgrade_locks(config, upgrade, fresh_index, uv_cache)
        written = write_report(paths, "lock-upgrade", True, {"target": target.uv_platform, **upgraded.to_dict()})
        what = "only " + ", ".join(upgrade) if upgrade else "every package; exact pins in the .in files stay"
        lines = [
            f"upgrade for {target.runtime.name} {target.architecture} ({what}):",
            *(f"  {move.describe()}" for move in upgraded.moves),
            *(f"  {where}: now {pin}" for where, pin in upgraded.repinned.items()),
            *(change.describe() for change in upgraded.changes),
        ]
        for line in lines:
            logs.result(logger, line)
        logger.info(f"wrote {written}")
    elif not args.check:
        for change in compile_all(config, False, (), uv_cache):
            logs.result(logger, change.describe())
    resolve = args.check and not (args.no_resolve or args.offline)
    result = check_locks(config, index, resolve=resolve, uv_cache=uv_cache)
    notes = read_notes(config.lock.layer_lock)  # what the layer leaves to the runtime, and bundles instead
    findings = [
        Finding("lock", "error", f"{p.package}: {p.problem}" if p.package else p.problem, p.fix, p.file, p.line)
        for p in result.problems
    ]
    data = {"target": target.uv_platform, **dataclasses.asdict(result), "runtime_packages": notes}
    report = write_report(paths, "lock", not result.problems, data, findings=findings)
    for line in notes:
        logger.info(f"  {line}")
    for name, wheel in result.target_wheels.items():
        logger.info(f"  {name:<18} {wheel}")
    if result.wheels_not_checked:
        logger.info(f"  not checked (offline, never fetched): {', '.join(result.wheels_not_checked)}")
    if result.problems:
        raise LockCheckError(result.problems)
    what = "fresh resolve identical, " if resolve else ""
    logs.result(
        logger,
        f"locks ok for {target.runtime.name} {target.architecture} (glibc {target.glibc}): "
        f"{what}{len(result.target_wheels)} target wheels hashed ({index.requests} index requests); wrote {report}",
    )
    return 0
