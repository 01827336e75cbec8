"""What can be wrong with a lock, as types: each names the file, line and package, and the fix."""

from __future__ import annotations

from ci.errors import CheckFailedError, PipelineError

RELOCK = "`python -m ci lock`"


class LockProblem(PipelineError):  # noqa: N818  (a problem found, reported with others)
    """One problem at one place: `file:line: package: problem` + fix."""

    kind = "lock"

    def __init__(self, file: str, line: int | None, package: str | None, problem: str, fix: str) -> None:
        where = f"{file}:{line}" if line else file
        subject = f"{package}: " if package else ""
        super().__init__(f"{where}: {subject}{problem}", fix)
        self.file = file
        self.line = line
        self.package = package
        self.detail = problem

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "package": self.package,
            "problem": self.detail,
            "fix": self.fix,
        }


class UnpinnedLine(LockProblem):
    """A lock line that is not an exact `==` pin: installs would drift."""

    kind = "unpinned"


class UnhashedLine(LockProblem):
    """A pin without --hash: `pip install --require-hashes` refuses the whole file."""

    kind = "unhashed"


class StaleLock(LockProblem):
    """The lock no longer matches its .in file (or a fresh resolve would write something else)."""

    kind = "stale"


class NoTargetWheel(LockProblem):
    """The pinned version has no wheel the Lambda target can install and load."""

    kind = "no-target-wheel"


class HashMismatch(LockProblem):
    """The lock's hashes miss the target wheel's sha256, or hold one the index never published."""

    kind = "hash"


class InconsistentLocks(LockProblem):
    """Training or dev pins a shared package at another version than the layer: the model would be
    pickled by one version and unpickled by another."""

    kind = "inconsistent"


class ProvidedInLayer(LockProblem):
    """The layer pins a package the Lambda runtime already provides (it would shadow the runtime's)."""

    kind = "provided"


class LockCheckError(CheckFailedError):
    """All problems of one `python -m ci lock --check` run, so a user fixes them in one go."""

    def __init__(self, problems: list[LockProblem]) -> None:
        lines = [f"{len(problems)} lock problem(s):"]
        for problem in problems:
            lines.append(f"  - {problem.problem}\n    fix: {problem.fix}")
        super().__init__("\n".join(lines), f"fix the lines named above, then run {RELOCK} and commit the locks")
        self.problems = problems
