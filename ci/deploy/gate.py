"""The deploy gate in code (a workflow's `needs:` can be bypassed, this cannot): nothing is uploaded unless
every check passed on exactly these bytes, built from the tree as it is now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ci.deploy.artifacts import Artifacts
from ci.errors import CheckFailedError, PipelineError
from ci.layer import sources
from ci.paths import BuildPaths
from ci.reports import JUDGES, read_report

REQUIRED_CHECKS = ("budget", "pins", "abi", "smoke")
BUILT = ("layer.zip", "function.zip")  # what `ci build` makes (the model comes from training)


def build_problems(paths: BuildPaths, artifacts: Artifacts, root: Path) -> list[str]:
    """Why the zips are not what `ci build` would make from the tree at `root` now (empty if they are)."""
    try:
        report = read_report(paths, "build")
    except PipelineError as exc:
        return [f"build: missing or unreadable ({exc.problem})"]
    if report.get("passed") is not True:
        return ["build: FAILED (build/reports/build.json says passed=False)"]
    recorded = report.get("artifacts") or {}
    problems = [
        f"build: {artifact.name} {artifact.sha256[:12]} is not the one this build made "
        f"({str(recorded.get(artifact.name) or 'none')[:12]})"
        for artifact in artifacts.all()
        if artifact.name in BUILT and recorded.get(artifact.name) != artifact.sha256
    ]
    problems += missing_proofs("build", report)
    if not isinstance(report.get("sources"), dict):
        return [*problems, "build: build.json records no source digests (made by an older pipeline)"]
    return problems + [
        f"build: stale - {change} since the build" for change in sources.changes(report["sources"], root, paths.build)
    ]


def missing_proofs(check: str, report: dict[str, Any]) -> list[str]:
    """The proofs a report says it could not make (no interpreter of the target's machine ran its code)."""
    proofs = report.get("proofs") or {}
    return [
        f"{check}: proof missing - {name}: {str(how).removeprefix('missing: ')}"
        for name, how in sorted(proofs.items())
        if str(how).startswith("missing")
    ]


def smoke_problem(report: dict[str, Any]) -> str | None:
    """A smoke run vouches for the deploy only if it ran every committed event, as committed."""
    if report.get("partial") is False:
        return None
    if "partial" not in report:
        return "smoke: the report does not say it ran every committed event (made by an older pipeline)"
    details = [f"ran {', '.join(report.get('events_run') or []) or 'nothing'}"]
    for key, label in (("events_missing", "missing"), ("events_changed", "changed"), ("events_not_committed", "extra")):
        if report.get(key):
            details.append(f"{label}: {', '.join(report[key])}")
    if report.get("why"):
        details.append(str(report["why"]))
    return f"smoke: partial - not the full committed events ({'; '.join(details)})"


def check_gate(paths: BuildPaths, artifacts: Artifacts, root: Path, checks: tuple[str, ...] = REQUIRED_CHECKS) -> None:
    """Raise CheckFailedError naming every missing, failing or stale check report."""
    problems: list[str] = build_problems(paths, artifacts, root)
    rebuild = bool(problems)
    to_rerun: list[str] = []
    failed: list[str] = []
    for check in checks:
        try:
            report = read_report(paths, check)
        except PipelineError as exc:
            problems.append(f"{check}: missing or unreadable ({exc.problem})")
            to_rerun.append(check)
            continue
        if report.get("passed") is not True:
            problems.append(f"{check}: FAILED (build/reports/{check}.json says passed={report.get('passed')!r})")
            problems += missing_proofs(check, report)
            failed.append(check)
            continue
        recorded = report.get("artifacts") or {}
        found = missing_proofs(check, report) + [
            f"{check}: stale - it judged {artifact.name} "
            f"{(recorded.get(artifact.name) or 'nothing')[:12]}, about to deploy {artifact.sha256[:12]}"
            for artifact in artifacts.all()  # only what the check reads: retraining does not make abi stale
            if artifact.name in JUDGES.get(check, (artifact.name,)) and recorded.get(artifact.name) != artifact.sha256
        ]
        partial = smoke_problem(report) if check == "smoke" else None
        if partial:
            found.insert(0, partial)
        problems += found
        if found:
            to_rerun.append(check)
    if problems:
        fixes = []
        if any(" proof missing - " in problem for problem in problems):
            fixes.append(
                "make the missing proofs where the target's code runs (a host of the target's machine, or the "
                "emulation each message names), then rebuild and rerun the checks there"
            )
        elif rebuild:
            fixes.append("rebuild from the tree as it is now: `python -m ci build`, then rerun the checks")
        if failed:
            fixes.append(
                "fix what " + ", ".join(f"`python -m ci {c}`" for c in failed) + " reports (rerunning it alone "
                "changes nothing), rebuild if needed and rerun the checks"
            )
        if to_rerun:
            fixes.append(
                "run the checks on this build: "
                + " ".join(f"`python -m ci {c}`" for c in to_rerun)
                + (" (smoke on all of smoke.events: no --events)" if "smoke" in to_rerun else "")
            )
        raise CheckFailedError(
            "deploy refused: the checks have not all passed on the artifacts about to be deployed:\n    "
            + "\n    ".join(problems),
            "; ".join(fixes) + "; deploy only once they pass (nothing was uploaded)",
        )
