"""The deploy gate, in code: no byte is uploaded unless every check passed on exactly these bytes.

A workflow's `needs:` can be edited away or bypassed by running deploy by hand; this cannot.
"""

from __future__ import annotations

from ci.deploy.artifacts import Artifacts
from ci.errors import CheckFailedError, PipelineError
from ci.paths import BuildPaths
from ci.reports import JUDGES, read_report

REQUIRED_CHECKS = ("budget", "pins", "abi", "smoke")


def check_gate(paths: BuildPaths, artifacts: Artifacts, checks: tuple[str, ...] = REQUIRED_CHECKS) -> None:
    """Raise CheckFailedError naming every missing, failing or stale check report."""
    problems: list[str] = []
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
            failed.append(check)
            continue
        recorded = report.get("artifacts") or {}
        for artifact in artifacts.all():
            if artifact.name not in JUDGES.get(check, (artifact.name,)):
                continue  # e.g. abi never reads the model: retraining does not make it stale
            judged = recorded.get(artifact.name)
            if judged != artifact.sha256:
                problems.append(
                    f"{check}: stale - it judged {artifact.name} "
                    f"{(judged or 'nothing')[:12]}, about to deploy {artifact.sha256[:12]}"
                )
                if check not in to_rerun:
                    to_rerun.append(check)
    if problems:
        fixes = []
        if failed:
            fixes.append(
                "fix what " + ", ".join(f"`python -m ci {c}`" for c in failed) + " reports (rerunning it alone "
                "changes nothing), rebuild if needed and rerun the checks"
            )
        if to_rerun:
            fixes.append("run the checks on this build: " + " ".join(f"`python -m ci {c}`" for c in to_rerun))
        raise CheckFailedError(
            "deploy refused: the checks have not all passed on the artifacts about to be deployed:\n    "
            + "\n    ".join(problems),
            "; ".join(fixes) + "; deploy only once they pass (nothing was uploaded)",
        )
