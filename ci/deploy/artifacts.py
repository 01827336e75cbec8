"""The three deployable artifacts, snapshotted once and named by content, and the deploy gate they pass (a
workflow's `needs:` can be bypassed, this cannot): nothing is uploaded unless every check passed on exactly
these bytes, built from the tree as it is now; bytes rewritten during a deploy cannot slip through."""

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ci.errors import CheckFailedError, PipelineError
from ci.layer import sources
from ci.paths import BuildPaths
from ci.reports import JUDGES, read_report
from ci.snapshot import take
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class Artifact:
    name: str  # as ci.reports records it: layer.zip | function.zip | model.joblib
    kind: str  # layer | function | model (the S3 folder)
    path: Path  # the read-only snapshot: exactly the bytes `sha256` names
    sha256: str  # hex
    size: int
    source: Path | None = None  # where the snapshot was taken from (build/...), for messages

    @property
    def code_sha256(self) -> str:
        """Lambda's CodeSha256: base64 of the raw SHA-256 digest of the zip."""
        return hex_to_lambda_sha(self.sha256)

    def key(self, prefix: str) -> str:
        """Content-addressed S3 key: the same bytes always land on the same key."""
        return f"{prefix.strip('/')}/{self.kind}/{self.sha256}{self.path.suffix}"

    def unzipped_bytes(self) -> int:
        """What Lambda counts against its unzipped limit: the sum of the entries' uncompressed sizes."""
        with open_zip(self.path, "rebuild it: `python -m ci build`", self.source) as archive:
            return sum(info.file_size for info in archive.infos)


class Artifacts(NamedTuple):
    layer: Artifact
    function: Artifact
    model: Artifact


def hex_to_lambda_sha(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def lambda_sha_to_hex(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()


def local_artifacts(paths: BuildPaths) -> Artifacts:
    """Snapshot the artifacts about to be deployed; a missing one names the command that makes it."""
    specs = [
        ("layer.zip", "layer", paths.layer_zip, "python -m ci build"),
        ("function.zip", "function", paths.function_zip, "python -m ci build"),
        ("model.joblib", "model", paths.model, "python -m training"),
    ]
    found = []
    for name, kind, path, command in specs:
        if not path.is_file():
            raise PipelineError(f"{path} not found: nothing to deploy", f"run `{command}` first")
        snapshot = take(paths, path, name)
        found.append(Artifact(name, kind, snapshot.path, snapshot.sha256, snapshot.size, source=path))
    return Artifacts(*found)


REQUIRED_CHECKS = ("budget", "pins", "abi", "smoke")


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
        for artifact in artifacts
        if artifact.name in JUDGES["build"] and recorded.get(artifact.name) != artifact.sha256
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
            for artifact in artifacts  # only what the check reads: retraining does not make abi stale
            if artifact.name in JUDGES.get(check, (artifact.name,)) and recorded.get(artifact.name) != artifact.sha256
        ]
        if check == "smoke" and (partial := smoke_problem(report)):
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
