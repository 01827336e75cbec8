"""`python -m ci -q` / `-v`, run as a user runs them: what the quiet output keeps and hides, what -v adds.

The default output is the reference (other tests pin its lines); these compare the three levels of one command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from budget_fixtures import make_build, zip_sums
from conftest import run_cli

from ci.paths import BuildPaths

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
pytest_plugins = ["tests.moto_fixtures"]


VERBOSITY = ("-q", "-v", "--quiet", "--verbose")


def ci(paths: BuildPaths, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """`python -m ci [-q|-v] --build-dir ... <command ...>` on `paths`: global options before the command."""
    flags = list(args[: next(i for i, arg in enumerate(args) if arg not in VERBOSITY)])
    return run_cli(
        "-m", "ci", *flags, "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), *args[len(flags) :],
        check=False, env=env,
    )  # fmt: skip


def test_quiet_budget_prints_only_the_verdict_line(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]

    full = ci(paths, "budget")
    quiet = ci(paths, "-q", "budget")

    assert full.returncode == quiet.returncode == 0, (full.stderr, quiet.stderr)
    headline = full.stdout.splitlines()[0]
    assert headline.startswith(f"Lambda size budget: PASS  {used:,} of 262,144,000 bytes")
    assert "What Lambda counts" in full.stdout and "wrote " in full.stdout  # the tables and the report paths
    assert quiet.stdout == headline + "\n"  # the verdict, nothing else
    assert quiet.stderr == full.stderr == ""


def test_quiet_keeps_warnings_and_errors(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]

    warned = ci(paths, "--quiet", "budget", "--limit-bytes", str(used + 1))  # inside the warning band
    assert warned.returncode == 0, warned.stderr
    lines = warned.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Lambda size budget: WARN") and lines[1].startswith("warning: ")

    failed = ci(paths, "-q", "budget", "--limit-bytes", str(used - 1))
    assert failed.returncode == 1
    assert failed.stdout.startswith("Lambda size budget: FAIL") and len(failed.stdout.splitlines()) == 1
    assert failed.stderr.startswith("error: unzipped size ") and "fix: " in failed.stderr  # as without -q


def test_verbose_adds_the_aws_endpoint_and_region_and_quiet_keeps_the_status(tmp_path: Path, moto: str) -> None:
    paths = BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_", "CI_AWS", "CI_DEPLOY"))}
    env = {**keep, "AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}

    runs = {
        flag: ci(paths, *([flag] if flag else []), "status", "--target", "aws", env=env) for flag in ("", "-v", "-q")
    }

    assert all(run.returncode == 0 for run in runs.values()), {flag: run.stderr for flag, run in runs.items()}
    status = runs[""].stdout
    assert status.startswith(f"{moto} (") and "alias live: not created" in status
    assert runs["-q"].stdout == status  # status's listing is its result
    debug = [line for line in runs["-v"].stdout.splitlines() if line not in status.splitlines()]
    assert len(debug) == 1, debug
    assert debug[0].startswith("AWS: region ") and f"endpoint {moto}" in debug[0]
    assert "AWS: region" not in status


def test_quiet_and_verbose_are_global_options_and_exclusive(tmp_path: Path) -> None:
    paths = make_build(tmp_path)
    both = ci(paths, "-q", "-v", "budget")
    assert both.returncode == 2 and "-v/--verbose: not allowed with argument -q/--quiet" in both.stderr

    after = ci(paths, "budget", "-q")  # an option of `python -m ci`, not of the command
    assert after.returncode == 2 and "unrecognized arguments: -q" in after.stderr

    helped = run_cli("-m", "ci", "--help")
    assert "-v, --verbose" in helped.stdout and "-q, --quiet" in helped.stdout
