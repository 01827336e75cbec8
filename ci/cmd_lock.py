"""`python -m ci lock [--check]`: the layer lock, resolved for the Lambda target (see ci/lock/)."""

from __future__ import annotations

import argparse

from ci.config import Config
from ci.paths import BuildPaths

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
    parser.add_argument("--upgrade", action="store_true", help="resolve the newest versions, not the current pins")
    parser.add_argument(
        "-P", "--upgrade-package", action="append", default=[], metavar="NAME", help="upgrade only NAME (repeatable)"
    )
    parser.add_argument(
        "--runtime-packages",
        action="store_true",
        help="regenerate ci/policy/runtime-<runtime>.txt for every runtime in lambda_runtimes.json (nothing else)",
    )


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.lock.check import check_locks
    from ci.lock.direct_fit import check_direct_pins
    from ci.lock.index import SimpleIndex
    from ci.lock.problems import LockCheckError
    from ci.lock.run import compile_all
    from ci.reports import Finding, write_report

    index = SimpleIndex(config.lock.index_url, paths.cache / "pypi-simple", refresh=args.refresh, offline=args.offline)
    uv_cache = paths.cache / "uv"
    if getattr(args, "runtime_packages", False):  # callers may build the Namespace by hand
        from ci.config import load_policy
        from ci.lock.runtime_packages import generate_all

        for line in generate_all(load_policy(), config.lock.index_url, uv_cache=uv_cache):
            print(line)
        return 0
    check_direct_pins(config, index)  # one message before uv's resolver trace (scikit-learn 1.3.2 on python3.13)
    if not args.check:
        for change in compile_all(config, args.upgrade, tuple(args.upgrade_package), uv_cache):
            print(change.describe())
    resolve = args.check and not (args.no_resolve or args.offline)
    result = check_locks(config, index, resolve=resolve, uv_cache=uv_cache)
    findings = [
        Finding("lock", "error", f"{p.package}: {p.detail}" if p.package else p.detail, p.fix, p.file, p.line)
        for p in result.problems
    ]
    report = write_report(
        paths, "lock", result.passed, {"target": config.target.uv_platform, **result.to_dict()}, findings=findings
    )
    for name, wheel in result.target_wheels.items():
        print(f"  {name:<18} {wheel}")
    if result.not_checked:
        print(f"  not checked (offline, never fetched): {', '.join(result.not_checked)}")
    if not result.passed:
        raise LockCheckError(result.problems)
    what = "fresh resolve identical, " if resolve else ""
    print(
        f"locks ok for {config.target.runtime.name} {config.target.architecture} (glibc {config.target.glibc}): "
        f"{what}{len(result.target_wheels)} target wheels hashed ({index.requests} index requests); wrote {report}"
    )
    return 0
