"""The GitHub workflows: they lint, match GitHub's schemas, and keep what the README promises.

Rules are checked as properties over every job of every workflow (least permissions derived from the
steps, timeouts, pins, repository commands only, nothing installed beside a write token), so a new job
that breaks one fails. Conditions are evaluated, not read as text (tests/gh_expressions.py): each workflow
is run in concrete events with concrete job outcomes, and the jobs GitHub would start are compared with
what the README promises (deploy only verified, fresh commits of main; a comment even when a check failed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci.config import load_config
from ci.deploy.target import cfn_loader
from ci.paths import REPO_ROOT, BuildPaths
from tests.gh_expressions import (
    FEATURE,
    MAIN,
    Outcome,
    ancestors,
    contexts,
    hashed_files,
    needed,
    ran,
    render,
    run_jobs,
    run_steps,
    runs_of,
    triggered,
    triggers,
)

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
LOCAL_ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
VERIFY = GITHUB / "workflows" / "verify.yml"
PULL_REQUEST = GITHUB / "workflows" / "pull-request.yml"
DEPLOY = GITHUB / "workflows" / "deploy.yml"
RELOCK = GITHUB / "workflows" / "relock.yml"
DEPENDABOT = GITHUB / "dependabot.yml"
CHECK_JOBS = ("budget", "pins", "abi", "smoke")
TOOLS = Path(sys.executable).parent  # .venv/bin: actionlint, shellcheck, check-jsonschema

# What a `$VAR` in a run line may hold, to parse it as the command will see it.
SAMPLE_VALUES = {"BASELINE_REF": "origin/main", "TO_VERSION": "3", "PACKAGES": "pandas numpy"}
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?:#\s*(?P<comment>.*))?$")
VERSION_COMMENT = re.compile(r"^v\d+\.\d+\.\d+$")

AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"
AWS_COMMAND = re.compile(
    r"^(make (deploy|rollback|bootstrap|unlock)\b|\S*python3? -m ci (deploy|rollback|bootstrap|unlock)\b)"
)
DEPLOY_COMMAND = re.compile(r"^(make deploy\b|\S*python3? -m ci deploy\b)")
STDLIB_COMMANDS = ("python3 -m ci.github ", "python3 -m ci.python ")  # the runner's own python3 (no setup-python)


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    return load(path)["jobs"]


def steps_of(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(job id, index, step) for workflows; ("<action>", index, step) for composite actions."""
    data = load(path)
    if "runs" in data:
        for index, step in enumerate(data["runs"].get("steps", [])):
            yield "<action>", index, step
        return
    for job_id, job in data["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_id, index, step


def run_lines(step: dict[str, Any]) -> list[str]:
    text = step.get("run")
    if not isinstance(text, str):
        return []
    logical = text.replace("\\\n", " ")
    return [line.strip() for line in logical.splitlines() if line.strip() and not line.strip().startswith("#")]


def makefile_targets() -> set[str]:
    targets: set[str] = set()
    for line in (REPO_ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\- ]+):(?!=)", line)
        if match and not match.group(1).startswith("."):
            targets.update(match.group(1).split())
    return targets


def parses(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None if argparse accepts argv; else its error message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            return err.getvalue().strip() or f"exit {exc.code}"
    return None


def shell_operators(line: str) -> list[str]:
    """Unquoted shell operators (&&, ||, ;, |, redirections) in a line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    return [token for token in lexer if token and set(token) <= set("();<>|&")]


def command_problem(line: str, env: dict[str, Any]) -> str | None:
    """Why `line` is not a command of this repository, or None if it is one."""
    if any(token in line for token in ("`", "$(", "${{")) or shell_operators(line):
        return "inline shell logic or an expression: a step must be one repository command"
    argv = shlex.split(line)
    for index, arg in enumerate(argv):
        for name in re.findall(r"\$\{?(\w+)\}?", arg):
            if name not in env:
                return f"${name} is not set in the step's env"
            argv[index] = arg.replace(f"${name}", SAMPLE_VALUES.get(name, "x"))
    if argv[0] == "make":
        unknown = [target for target in argv[1:] if "=" not in target and target not in makefile_targets()]
        return f"make target(s) {unknown} not in the Makefile" if unknown else None
    if argv[0] not in ("python", "python3", ".venv/bin/python") or len(argv) < 3 or argv[1] != "-m":
        return "not `make ...`, `python3 -m ...` or `.venv/bin/python -m ...`"
    module, rest = argv[2], argv[3:]
    if module == "ci":
        from ci.cli import build_parser

        return parses(build_parser(), rest)
    if module == "ci.github":
        from ci.github.__main__ import build_parser as github_parser

        return parses(github_parser(), rest)
    if module == "ci.python":
        from ci.python import build_parser as python_parser

        return parses(python_parser(), rest)
    if module in ("training", "pytest"):
        return None if importlib.util.find_spec(module) else f"module {module} not found"
    return f"module {module} is not a command of this repository"


def all_steps() -> Iterator[tuple[Path, str, int, dict[str, Any]]]:
    for path in [*WORKFLOWS, *LOCAL_ACTIONS]:
        for job_id, index, step in steps_of(path):
            yield path, job_id, index, step


def all_jobs() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for job_id, job in jobs(path).items():
            yield path, job_id, job


def artifact_steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"actions/{action}@")]


def commands(job: dict[str, Any]) -> list[str]:
    return [line for step in job.get("steps", []) for line in run_lines(step)]


BUILDING = re.compile(r"^(make (train|build|lock|lock-check|pipeline)\b|.*-m (training|ci (build|lock))\b)")


def argv_of(step: dict[str, Any]) -> list[str]:
    """A one-command `run:` as argv, the interpreter path folded to `python` (harmless spellings match)."""
    (line,) = run_lines(step)
    argv = shlex.split(line)
    return ["python", *argv[1:]] if argv[0].endswith(("python", "python3")) else argv


def github_command(job: dict[str, Any], subcommand: str) -> tuple[dict[str, Any], list[str]]:
    """The job's one step running `python -m ci.github <subcommand>`, and its argv after the subcommand."""
    found = [
        (step, argv[4:])
        for step in job.get("steps", [])
        if run_lines(step) and (argv := argv_of(step))[:4] == ["python", "-m", "ci.github", subcommand]
    ]
    assert len(found) == 1, f"expected one `ci.github {subcommand}` step, found {len(found)}"
    return found[0]


def github_subcommands(job: dict[str, Any]) -> set[str]:
    """The `python -m ci.github <subcommand>`s the job runs."""
    return {argv[3] for c in commands(job) if (argv := argv_of_line(c))[:3] == ["python", "-m", "ci.github"]}


def argv_of_line(line: str) -> list[str]:
    argv = shlex.split(line)
    return ["python", *argv[1:]] if argv[0].endswith(("python", "python3")) else argv


def action_uses(job: dict[str, Any]) -> list[str]:
    return [str(step.get("uses", "")) for step in job.get("steps", [])]


def installs(job: dict[str, Any]) -> list[str]:
    """The job's steps that install Python, packages or a cache someone else filled."""
    return [
        u for u in action_uses(job) if u.startswith(("actions/setup-python@", "./.github/actions/", "actions/cache"))
    ]


def writes_to_aws(job: dict[str, Any]) -> bool:
    return any(AWS_COMMAND.match(c) for c in commands(job)) or any(
        u.startswith(AWS_CREDENTIALS) for u in action_uses(job)
    )


# --- linters -------------------------------------------------------------------------------------


def tool_env() -> dict[str, str]:
    return {"PATH": f"{TOOLS}:/usr/bin:/bin", "HOME": str(Path.home())}


def test_actionlint_passes_with_shellcheck(repo_root: Path) -> None:
    result = subprocess.run(
        [str(TOOLS / "actionlint"), "-verbose"], cwd=repo_root, capture_output=True, text=True, env=tool_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Rule "shellcheck" was disabled' not in result.stderr, "shellcheck must check the run scripts"
    linted = set(re.findall(r"Linting (\S+\.ya?ml)", result.stderr))
    assert {str(p.relative_to(repo_root)) for p in WORKFLOWS} <= linted


def tag_form_copy(tmp_path: Path, edit: str | None = None) -> Path:
    """A git repo holding the workflows with each SHA replaced by its commented major tag.

    actionlint knows popular actions by tag, not by SHA: in this form it also checks every `with:`
    input against the action's metadata and warns on actions that run on a deprecated Node runtime.
    """
    root = tmp_path / "tagform"
    shutil.copytree(GITHUB, root / ".github")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for file in (root / ".github").rglob("*.yml"):
        text = re.sub(r"@[0-9a-f]{40} # (v\d+)[.\d]*", r"@\1", file.read_text())
        if edit and file.name == "verify.yml":
            text = text.replace("persist-credentials: false", edit, 1)
        file.write_text(text)
    return root


def test_actionlint_checks_action_inputs_and_runtimes_by_tag(tmp_path: Path) -> None:
    root = tag_form_copy(tmp_path)
    assert "actions/checkout@v6" in (root / ".github/workflows/verify.yml").read_text()
    result = subprocess.run([str(TOOLS / "actionlint")], cwd=root, capture_output=True, text=True, env=tool_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node20" not in result.stdout


def test_actionlint_tag_form_catches_a_wrong_input(tmp_path: Path) -> None:
    """Control for the test above: the tag form really validates inputs."""
    root = tag_form_copy(tmp_path, edit="persist-credentials: false\n          no-such-input: 1")
    result = subprocess.run([str(TOOLS / "actionlint")], cwd=root, capture_output=True, text=True, env=tool_env())
    assert result.returncode != 0
    assert "no-such-input" in result.stdout


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-workflows", p) for p in WORKFLOWS]
    + [("vendor.github-actions", p) for p in LOCAL_ACTIONS]
    + [("vendor.dependabot", DEPENDABOT)],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_schema(schema: str, path: Path) -> None:
    result = subprocess.run(
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- every step is a repository command ----------------------------------------------------------


def test_every_run_step_is_a_command_of_this_repository() -> None:
    problems = []
    count = 0
    for path, job_id, index, step in all_steps():
        for line in run_lines(step):
            count += 1
            problem = command_problem(line, step.get("env") or {})
            if problem:
                problems.append(f"{path.name} {job_id} step {index}: `{line}`: {problem}")
    assert count >= 15
    assert not problems, "\n".join(problems)


def test_command_check_rejects_what_is_not_a_command() -> None:
    """Control: the checker is not a rubber stamp."""
    assert command_problem("make no-such-target", {})
    assert command_problem("python -m ci no-such-command", {})
    assert command_problem(".venv/bin/python -m ci budget --no-such-option", {})
    assert command_problem("python -m ci.github comment --body x", {})  # --marker is required
    assert command_problem("pip install boto3", {})
    assert command_problem("make build && make abi", {})
    assert command_problem("python -m ci budget --baseline-ref ${{ github.base_ref }}", {})
    assert command_problem('python -m ci budget --baseline-ref "$UNSET"', {})
    assert command_problem("make build", {}) is None


def test_venv_and_python_are_set_up_before_use() -> None:
    for path in WORKFLOWS:
        for job_id, job in jobs(path).items():
            seen_setup = False
            for step in job.get("steps", []):
                seen_setup |= str(step.get("uses", "")) == "./.github/actions/setup"
                for line in run_lines(step):
                    if line.startswith((".venv/", "make ")):
                        assert seen_setup, f"{path.name} {job_id}: `{line}` before ./.github/actions/setup"
                    if line.startswith("python "):
                        assert seen_setup or line.startswith(STDLIB_COMMANDS), (
                            f"{path.name} {job_id}: `{line}` needs the venv; only ci.github and ci.python run bare"
                        )


def test_a_job_that_runs_only_standard_library_commands_installs_nothing() -> None:
    """The comment, the gate, the freshness and branch checks and the re-lock PR start in seconds."""
    found = 0
    for path, job_id, job in all_jobs():
        if commands(job) and all(c.startswith(STDLIB_COMMANDS) for c in commands(job)):
            found += 1
            assert not installs(job), f"{path.name} {job_id} runs only ci.github/ci.python but installs {installs(job)}"
    assert found >= 5


def test_the_report_only_commands_import_the_standard_library_only(tmp_path: Path) -> None:
    """`python -S` (no site-packages): every ci.github module imports and the gate runs, as on a bare runner."""
    python = getattr(sys, "_base_executable", sys.executable)
    modules = sorted(p.stem for p in (REPO_ROOT / "ci" / "github").glob("*.py") if p.stem != "__init__")
    probe = "import importlib, sys; [importlib.import_module('ci.github.' + m) for m in sys.argv[1:]]; import yaml"
    result = subprocess.run([python, "-S", "-c", probe, *modules], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "No module named 'yaml'" in result.stderr, "control: -S must hide site-packages\n" + result.stderr
    assert result.stderr.count("Error") == 1, result.stderr
    needs = '{"build": {"result": "success", "outputs": {}}}'
    env = {"PATH": "/usr/bin:/bin", "NEEDS": needs, "GITHUB_OUTPUT": str(tmp_path / "out")}
    gate = [python, "-S", "-m", "ci.github", "gate", "--require", "build"]
    ran = subprocess.run(gate, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "verified=true" in (tmp_path / "out").read_text()
    config = [python, "-S", "-m", "ci.github", "config", "runner=target.runner"]  # verify's target job
    ran = subprocess.run(config, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert ran.returncode == 0 and "runner=" in (tmp_path / "out").read_text(), ran.stderr
    relock_files = "from pathlib import Path; from ci.github.relock import lock_files; print(lock_files(Path.cwd()))"
    ran = subprocess.run([python, "-S", "-c", relock_files], cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert ran.returncode == 0 and "'requirements-layer.txt'" in ran.stdout, ran.stderr  # relock-pr's default files


def test_each_job_installs_the_environment_it_runs() -> None:
    """Check, build, deploy and re-lock jobs: the pipeline lock; only lint and tests add the dev tools."""
    for path in WORKFLOWS:
        for job_id, job in jobs(path).items():
            setups = [s for s in job.get("steps", []) if s.get("uses") == "./.github/actions/setup"]
            if not setups:
                continue
            (setup,) = setups
            environment = setup.get("with", {}).get("environment")
            testing = any(c in ("make test", "make lint") for c in commands(job))
            assert environment == ("dev" if testing else "pipeline"), f"{path.name} {job_id}: {environment}"


# --- rules every job keeps -----------------------------------------------------------------------


def permissions_needed(job: dict[str, Any]) -> dict[str, str]:
    """What the job's steps use: the checkout reads the repository; the OIDC sign-in needs an id token; the
    sticky comment and the re-lock pull request write pull requests; the re-lock pushes its branch.
    A reusable workflow's call: what its jobs need (a caller's permissions cap the called jobs')."""
    if "uses" in job:
        need: dict[str, str] = {}
        for called in jobs(REPO_ROOT / job["uses"]).values():
            for scope, level in permissions_needed(called).items():
                need[scope] = "write" if "write" in (level, need.get(scope)) else level
        return need
    need = {"contents": "read"} if any(u.startswith("actions/checkout@") for u in action_uses(job)) else {}
    if any(u.startswith(AWS_CREDENTIALS) for u in action_uses(job)):
        need["id-token"] = "write"
    if github_subcommands(job) & {"comment", "relock-pr"}:
        need["pull-requests"] = "write"
    if "relock-pr" in github_subcommands(job):
        need["contents"] = "write"
    return need


def test_every_job_holds_exactly_the_permissions_its_steps_use() -> None:
    problems = [
        f"{path.name}: top-level permissions must be {{}} (each job says what it needs)"
        for path in WORKFLOWS
        if load(path).get("permissions") != {}
    ]
    for path, job_id, job in all_jobs():
        if job.get("permissions") != permissions_needed(job):
            problems.append(f"{path.name} {job_id}: {job.get('permissions')}, its steps use {permissions_needed(job)}")
    assert not problems, "\n".join(problems)


def test_every_job_has_a_timeout() -> None:
    for path, job_id, job in all_jobs():
        if "uses" not in job:  # a reusable-workflow call takes no timeout; its own jobs have one
            assert 0 < job.get("timeout-minutes", 0) <= 60, f"{path.name} {job_id}: timeout-minutes 1..60"


def test_a_job_holding_a_write_token_or_a_secret_runs_only_standard_library_commands() -> None:
    """No installed package (an upgraded one in the re-lock), no restored cache, no make beside the token.
    The production jobs' id token is the exception by design: it signs in to the one deploy role."""
    found = 0
    for path, job_id, job in all_jobs():
        writes = {scope for scope, level in job.get("permissions", {}).items() if level == "write"} - {"id-token"}
        if not writes and "secrets." not in yaml.safe_dump(job):
            continue
        found += 1
        assert commands(job) and all(c.startswith("python3 -m ci.github ") for c in commands(job)), (path, job_id)
        assert not installs(job), f"{path.name} {job_id}: {installs(job)} beside a write token or a secret"
    assert found >= 3


NEEDS_HISTORY = re.compile(r"(make deploy|-m ci deploy|--baseline-ref|--base-ref)\b")


def test_a_job_that_compares_with_or_orders_against_other_commits_fetches_the_history() -> None:
    """`ci deploy` refuses an ancestor of the live commit; the budget and the model report build the base's
    commit: a depth-1 clone can do neither."""
    found = 0
    for path, job_id, job in all_jobs():
        if any(NEEDS_HISTORY.search(c) for c in commands(job)):
            found += 1
            (checkout,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
            assert checkout["with"].get("fetch-depth") == 0, f"{path.name} {job_id}: fetch-depth 0"
    assert found >= 4


def test_every_job_output_is_set_by_a_step_of_that_job_that_runs_a_repository_command() -> None:
    found = 0
    for path, job_id, job in all_jobs():
        steps = {s["id"]: s for s in job.get("steps", []) if "id" in s}
        for name, value in job.get("outputs", {}).items():
            found += 1
            marked = {i: {"outputs": {name: f"<{i}>"}} for i in steps}
            source = render(value, {"steps": marked})
            assert re.fullmatch(r"<[\w-]+>", source), f"{path.name} {job_id}.{name}: {value} names no step output"
            assert run_lines(steps[source[1:-1]]), f"{path.name} {job_id}.{name} is not set by a command"
    assert found >= 3


REPORTING = re.compile(r"-m ci\.github (summary|annotate)\b")


def reports(step: dict[str, Any]) -> bool:
    upload = str(step.get("uses", "")).startswith("actions/upload-artifact@")
    return any(REPORTING.search(line) for line in run_lines(step)) or (
        upload and re.match(r"(report-|relock-reports)", step["with"]["name"]) is not None
    )


def test_reports_are_written_and_uploaded_even_after_a_step_failed() -> None:
    """A failed check must say why: its summary, annotations and report artifact come after the failure."""
    found = 0
    for path, job_id, job in all_jobs():
        steps = job.get("steps", [])
        for index, step in enumerate(steps):
            if reports(step):
                found += 1
                for failing in range(index):
                    assert run_steps(steps, contexts("push"), failing)[index], (path.name, job_id, index, failing)
    assert found >= 15


def uses_lines() -> Iterator[tuple[Path, str, str | None]]:
    for path in [*WORKFLOWS, *LOCAL_ACTIONS]:
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match:
                yield path, match.group("ref"), match.group("comment")


def test_third_party_actions_are_pinned_to_a_commit_with_the_version_in_a_comment() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for path, ref, comment in uses_lines():
        if ref.startswith("./"):
            assert (REPO_ROOT / ref).exists(), f"{path.name}: local {ref} missing"
            continue
        match = PINNED.match(ref)
        assert match, f"{path.name}: {ref} is not pinned to a 40-hex commit SHA"
        assert comment and VERSION_COMMENT.match(comment.strip()), f"{path.name}: {ref} lacks `# vX.Y.Z`"
        owner_repo = "/".join(match.group("action").split("/")[:2])
        pins.setdefault(owner_repo, set()).add((match.group("sha"), comment.strip()))
    assert {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"} <= pins.keys()
    assert {"actions/download-artifact", "aws-actions/configure-aws-credentials"} <= pins.keys()
    for action, versions in pins.items():
        assert len(versions) == 1, f"{action} is pinned to different commits: {versions}"


def test_no_workflow_runs_untrusted_code_with_secrets() -> None:
    for path in WORKFLOWS:
        assert "pull_request_target" not in triggers(load(path))
        for _, _, step in steps_of(path):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}: token left in .git"


# --- production: who may write to AWS, and when --------------------------------------------------


def test_a_job_that_writes_to_aws_runs_only_from_main_after_the_checks_say_yes() -> None:
    """Every run of every workflow, with every outcome of the jobs before: a job that deploys, rolls back,
    bootstraps, unlocks or signs in to AWS runs only for main (push or dispatch) after the branch check
    succeeded; one that deploys also only when lint and tests passed, verify said verified=true and
    main has not moved on (fresh=true)."""
    seen: set[tuple[str, str]] = set()
    for path in WORKFLOWS:
        workflow_jobs = jobs(path)
        aws = {job_id for job_id, job in workflow_jobs.items() if writes_to_aws(job)}
        if not aws:
            continue
        branch_checks = {j for j, job in workflow_jobs.items() if "deploy-freshness" in github_subcommands(job)}
        tests = {j for j, job in workflow_jobs.items() if "make test" in commands(job)}
        for run, _, results in runs_of(path):
            for job_id in aws & ran(results):
                seen.add((path.name, job_id))
                where = f"{path.name} {job_id} ran in {run['github']['event_name']} {run['github']['ref']} {results}"
                assert run["github"]["ref"] == MAIN and run["github"]["event_name"] in ("push", "workflow_dispatch"), (
                    where
                )
                before = ancestors(workflow_jobs, job_id)
                checks = branch_checks & before
                assert checks and all(results[c].result == "success" for c in checks), where
                if any(DEPLOY_COMMAND.match(c) for c in commands(workflow_jobs[job_id])):
                    assert tests and tests <= before and all(results[a].result == "success" for a in before), where
                    verified = [a for a in before if "verified" in results[a].outputs]
                    fresh = [a for a in before if "fresh" in results[a].outputs]
                    assert verified and all(results[a].outputs["verified"] == "true" for a in verified), where
                    assert fresh and all(results[a].outputs["fresh"] == "true" for a in fresh), where
    assert seen == {("deploy.yml", "deploy"), ("deploy.yml", "rollback")}, "each one runs in some run"


def test_a_run_on_another_branch_fails_instead_of_skipping_everything() -> None:
    """A dispatch from a feature branch used to skip every job: a green run that deployed nothing. The branch
    check runs in every run, and when it fails nothing else does."""
    deploy_jobs = jobs(DEPLOY)
    _, args = github_command(deploy_jobs["branch"], "deploy-freshness")
    assert "--ref-only" in args and args[args.index("--branch") + 1] == triggers(load(DEPLOY))["push"]["branches"][0]
    for _, outcomes, results in runs_of(DEPLOY):
        assert "branch" in ran(results)
        if outcomes["branch"].result == "failure":
            assert ran(results) == {"branch"}, results


YES = {"verify": Outcome(outputs={"verified": "true"}), "fresh": Outcome(outputs={"fresh": "true"})}
DEPLOYED, CHECKED = {"branch", "test", "verify", "fresh", "deploy"}, {"branch", "test", "verify"}
Trigger = tuple[str, dict[str, str]]
PUSH: Trigger = ("push", {})
BY_HAND: Trigger = ("workflow_dispatch", {"action": "deploy", "to_version": ""})
ROLLBACK: Trigger = ("workflow_dispatch", {"action": "rollback", "to_version": ""})
DEPLOY_RUNS: dict[str, tuple[Trigger, str, dict[str, Outcome], set[str]]] = {
    "push to main, verified, still the tip: deployed": (PUSH, MAIN, {}, DEPLOYED),
    "redeploy by hand": (BY_HAND, MAIN, {}, DEPLOYED),
    "not verified": (PUSH, MAIN, {"verify": Outcome(outputs={"verified": "false"})}, CHECKED),
    "verify failed": (PUSH, MAIN, {"verify": Outcome("failure")}, CHECKED),
    "tests failed": (PUSH, MAIN, {"test": Outcome("failure")}, CHECKED),
    "a newer commit is on main": (PUSH, MAIN, {"fresh": Outcome(outputs={"fresh": "false"})}, {*CHECKED, "fresh"}),
    "rollback: no build": (ROLLBACK, MAIN, {}, {"branch", "rollback"}),
    "by hand from a branch: the check fails": (BY_HAND, FEATURE, {"branch": Outcome("failure")}, {"branch"}),
    "from a branch the check let through: no deploy": (BY_HAND, FEATURE, {}, {*CHECKED, "fresh"}),
    "rollback from a branch the check let through: none": (ROLLBACK, FEATURE, {}, {"branch"}),
}


@pytest.mark.parametrize("case", DEPLOY_RUNS)
def test_deploy_runs(case: str) -> None:
    (event, inputs), ref, outcomes, expected = DEPLOY_RUNS[case]
    workflow = load(DEPLOY)
    assert triggered(workflow, event, ref)
    assert ran(run_jobs(workflow["jobs"], contexts(event, ref, inputs), {**YES, **outcomes})) == expected


@pytest.mark.parametrize(("event", "ref"), [("pull_request", MAIN), ("push", FEATURE), ("merge_group", MAIN)])
def test_deploy_never_starts_for_a_pull_request_or_another_branch(event: str, ref: str) -> None:
    assert not triggered(load(DEPLOY), event, ref)


@pytest.mark.parametrize(
    ("to_version", "command"),
    [("", ".venv/bin/python -m ci rollback"), ("3", '.venv/bin/python -m ci rollback --to "$TO_VERSION"')],
)
def test_rollback_runs_exactly_one_rollback_command(to_version: str, command: str) -> None:
    steps = jobs(DEPLOY)["rollback"]["steps"]
    run = contexts("workflow_dispatch", MAIN, {"action": "rollback", "to_version": to_version})
    executed = [
        line for step, runs in zip(steps, run_steps(steps, run), strict=True) if runs for line in run_lines(step)
    ]
    assert [c for c in executed if " -m ci rollback" in c] == [command]
    assert render(jobs(DEPLOY)["rollback"]["steps"][-1]["env"]["TO_VERSION"], run) == (to_version or "")


def test_deploy_runs_the_pull_request_lint_and_tests_whenever_it_verifies() -> None:
    deploy_jobs, pr_jobs = jobs(DEPLOY), jobs(PULL_REQUEST)
    assert deploy_jobs["test"]["steps"] == pr_jobs["test"]["steps"], "the same lint and tests as pull requests"
    for _, _, results in runs_of(DEPLOY):
        assert ("verify" in ran(results)) == ("test" in ran(results)), results


def test_the_whole_deploy_run_is_one_queue_that_is_never_cancelled() -> None:
    workflow = load(DEPLOY)
    assert workflow["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    for job_id, job in workflow["jobs"].items():
        assert "concurrency" not in job, f"{job_id}: a job in the run's own group would wait for itself"


def test_a_deploy_uses_the_verified_artifacts_without_rebuilding() -> None:
    found = 0
    for path, job_id, job in all_jobs():
        steps = job.get("steps", [])
        deploys = [i for i, s in enumerate(steps) if any(DEPLOY_COMMAND.match(line) for line in run_lines(s))]
        if not deploys:
            continue
        found += 1
        assert not [c for c in commands(job) if BUILDING.match(c)], f"{path.name} {job_id} rebuilds"
        downloads = {i: s["with"] for i, s in enumerate(steps) if "download-artifact@" in str(s.get("uses", ""))}
        assert {"name": "pipeline-build", "path": "build"} in downloads.values(), f"{path.name} {job_id}"
        assert {"pattern": "report-*", "merge-multiple": True, "path": "build/reports"} in downloads.values()
        assert max(downloads) < min(deploys), "the artifacts are in place before the deploy"
    assert found


@pytest.mark.parametrize(
    ("path", "job_id"),
    [(p, j) for p, j, job in all_jobs() if any(u.startswith(AWS_CREDENTIALS) for u in action_uses(job))],
    ids=str,
)
def test_every_aws_sign_in_uses_oidc_an_environment_and_one_allowed_account(path: Path, job_id: str) -> None:
    job = jobs(path)[job_id]
    assert job["environment"] == "production"
    (aws,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith(AWS_CREDENTIALS)]
    given = aws["with"]
    assert given["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & given.keys(), "no stored keys"
    # The region and the one allowed account come from repository commands run before the sign-in; the
    # account step fails when vars.AWS_ACCOUNT_ID is unset (an empty input would turn the action's check off).
    region_step, args = github_command(job, "config")
    assert args == ["region=deploy.region"]
    account_step, args = github_command(job, "aws-account")
    outputs = {"target": {"outputs": {"region": "eu-west-1"}}, "account": {"outputs": {"account-id": "123"}}}
    steps = {region_step["id"]: outputs["target"], account_step["id"]: outputs["account"]}
    assert render(given["aws-region"], {"steps": steps}) == "eu-west-1"
    assert render(given["allowed-account-ids"], {"steps": steps}) == "123"
    assert job["steps"].index(region_step) < job["steps"].index(aws)
    assert job["steps"].index(account_step) < job["steps"].index(aws)


def test_deploy_reads_no_stored_secret_but_the_job_token_and_never_beside_aws_credentials() -> None:
    assert set(re.findall(r"secrets\.(\w+)", DEPLOY.read_text())) == {"GITHUB_TOKEN"}
    for job_id, job in jobs(DEPLOY).items():
        if "secrets." in yaml.safe_dump(job):
            assert "id-token" not in job["permissions"], f"{job_id}: the token beside the AWS sign-in"


# --- verify: build once, check in parallel, on the same bytes ------------------------------------

INFORMATIONAL = {"model"}  # its report is shown, not judged: training's own gate judges the model


def test_the_verified_gate_requires_every_check_and_runs_whatever_they_did() -> None:
    workflow = load(VERIFY)
    verify_jobs = workflow["jobs"]
    output = triggers(workflow)["workflow_call"]["outputs"]["verified"]["value"]
    gate_id = render(output, {"jobs": {j: {"outputs": {"verified": j}} for j in verify_jobs}})
    gate = verify_jobs[gate_id]
    _, args = github_command(gate, "gate")
    required = set(args[args.index("--require") + 1 :])
    assert set(needed(gate)) == required == set(verify_jobs) - {gate_id} - INFORMATIONAL, "a check the gate ignores"
    for job_id in needed(gate):
        for result in ("failure", "cancelled"):
            results = run_jobs(verify_jobs, {"inputs": {}}, {job_id: Outcome(result)})
            assert results[gate_id].result == "success", f"the gate must run (and fail) when {job_id} is {result}"
    (step,) = [s for s in gate["steps"] if "NEEDS" in s.get("env", {})]
    needs = {"build": {"result": "success", "outputs": {}}}
    assert json.loads(render(step["env"]["NEEDS"], {"needs": needs})) == needs, "the gate reads every need"


def test_verify_builds_once_and_every_check_judges_those_bytes() -> None:
    verify = jobs(VERIFY)
    (upload,) = artifact_steps(verify["build"], "upload-artifact")
    paths = BuildPaths(build=REPO_ROOT / "build", cache=REPO_ROOT / "build" / "cache")
    expected = {
        str(p.relative_to(REPO_ROOT)) for p in (paths.layer_zip, paths.function_zip, paths.model_dir, paths.reports)
    }
    assert {line.strip().rstrip("/") for line in upload["with"]["path"].split()} == expected
    assert upload["with"]["if-no-files-found"] == "error"
    for check in CHECK_JOBS:
        job = verify[check]
        assert set(needed(job)) - {"target"} == {"build"}, f"{check} must start from the build's artifact"
        assert [d["with"] for d in artifact_steps(job, "download-artifact")] == [
            {"name": "pipeline-build", "path": "build"}
        ]
        assert not [c for c in commands(job) if BUILDING.match(c)], f"{check} rebuilds"
        assert any(re.search(rf"(make {check}$|-m ci {check}\b)", c) for c in commands(job)), check
        assert any(f"--check {check}" in c for c in commands(job) if "ci.github annotate" in c), check
        assert [u["with"]["name"] for u in artifact_steps(job, "upload-artifact")] == [f"report-{check}"]


def test_jobs_that_run_the_layers_code_run_on_the_targets_machine_read_from_pipeline_toml() -> None:
    """build (imports, strip's load check, trace) and smoke execute aarch64 code for an arm64 target: their
    runner is target.runner, which a repository command reads from pipeline.toml (no label copied in YAML)."""
    verify = jobs(VERIFY)
    target = verify["target"]
    step, argv = github_command(target, "config")
    assert argv == ["runner=target.runner"]
    assert target["outputs"]["runner"] == f"${{{{ steps.{step['id']}.outputs.runner }}}}"
    for name in ("build", "smoke"):
        assert "target" in needed(verify[name])
        assert verify[name]["runs-on"] == "${{ needs.target.outputs.runner }}", name
    for name in ("budget", "pins", "abi"):  # static checks: any machine
        assert verify[name]["runs-on"] == "ubuntu-24.04", name
    assert "-arm" not in VERIFY.read_text(), "the arm runner's label lives in ci/config.py, not in YAML"


# --- pull requests and merge queues --------------------------------------------------------------

FORK = {"pull_request": {"number": 7, "head": {"repo": {"full_name": "someone/fork"}}}}


@pytest.mark.parametrize(
    ("event", "payload", "outcomes", "expected"),
    [
        pytest.param("pull_request", {}, {}, {"test", "verify", "size-comment"}, id="pull request"),
        pytest.param(
            "pull_request", {}, {"verify": Outcome("failure")}, {"test", "verify", "size-comment"}, id="a check failed"
        ),
        pytest.param("pull_request", FORK, {}, {"test", "verify"}, id="from a fork: read-only token, no comment"),
        pytest.param("merge_group", {}, {}, {"test", "verify"}, id="merge group: same checks, no PR to comment on"),
    ],
)
def test_pull_request_runs(
    event: str, payload: dict[str, Any], outcomes: dict[str, Outcome], expected: set[str]
) -> None:
    workflow = load(PULL_REQUEST)
    assert triggered(workflow, event, MAIN)
    assert ran(run_jobs(workflow["jobs"], contexts(event, MAIN, **payload), outcomes)) == expected
    cancelled = run_jobs(workflow["jobs"], contexts(event, MAIN, **payload), outcomes, cancelled=True)
    assert cancelled["size-comment"].result == "skipped"


def test_a_missing_report_is_said_in_the_comment_not_fatal() -> None:
    steps = jobs(PULL_REQUEST)["size-comment"]["steps"]
    downloads = [i for i, s in enumerate(steps) if "download-artifact@" in str(s.get("uses", ""))]
    assert downloads
    for failing in downloads:
        assert run_steps(steps, contexts("pull_request"), failing)[-1], "the comment is posted without the report"


def test_a_push_cancels_its_own_pull_requests_older_run_and_nothing_else() -> None:
    workflow = load(PULL_REQUEST)
    assert workflow["concurrency"]["cancel-in-progress"] is True
    group = workflow["concurrency"]["group"]

    def group_of(event: str, ref: str, number: int = 7) -> str:
        return render(group, contexts(event, ref, pull_request={"number": number}))

    first, again, other = (
        group_of("pull_request", "refs/pull/7/merge"),
        group_of("pull_request", "refs/pull/7/merge"),
        group_of("pull_request", "refs/pull/8/merge", 8),
    )
    queued = [group_of("merge_group", f"refs/heads/gh-readonly-queue/main/pr-{n}-{n * 40}") for n in (1, 2)]
    assert first == again and len({first, other, *queued}) == 4


def test_verify_compares_a_pull_request_with_its_base_branch_and_a_merge_group_with_its_base_commit() -> None:
    call = jobs(PULL_REQUEST)["verify"]
    assert set(call["with"]) <= set(triggers(load(REPO_ROOT / call["uses"]))["workflow_call"]["inputs"])
    pr = contexts("pull_request", "refs/pull/7/merge")
    pr["github"]["base_ref"] = "release"
    group = contexts("merge_group", "refs/heads/gh-readonly-queue/main/pr-7-x")
    for name in ("budget-baseline-ref", "model-base-ref"):
        assert render(call["with"][name], pr) == "origin/release", name
        assert render(call["with"][name], group) == "b" * 40, name


# --- set-up: Python, caches, dependabot ----------------------------------------------------------


def cache_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in steps if str(s.get("uses", "")).startswith("actions/cache")]


def test_setup_uses_the_target_python_and_caches_keyed_by_the_locks() -> None:
    config = load_config()
    action = load(GITHUB / "actions" / "setup" / "action.yml")
    steps = action["runs"]["steps"]
    # The version comes from pipeline.toml through a repository command, never from a copy in YAML.
    [target] = [s for s in steps if s.get("id") == "target"]
    [command] = run_lines(target)
    version = subprocess.run([sys.executable, *command.split()[1:]], cwd=REPO_ROOT, capture_output=True, text=True)
    assert version.stdout.strip() == config.target.runtime.python
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "${{ steps.target.outputs.python }}"
    assert not re.search(r"3\.1\d|py31\d", yaml.safe_dump(action)), "a Python version is hard-coded"
    lock = {key: config.value("lock", key) for key in ("pipeline_lock", "dev_lock", "bootstrap_lock", "layer_lock")}
    synced = {"pipeline": {lock["bootstrap_lock"], lock["pipeline_lock"]}}
    synced["dev"] = {*synced["pipeline"], lock["dev_lock"]}
    for environment, save in product(("pipeline", "dev"), ("true", "false")):
        run = {
            "inputs": {"environment": environment, "save-cache": save},
            "runner": {"os": "Linux", "arch": "X64"},
            "steps": {"target": {"outputs": {"python": "3.12"}}, "python": {"outputs": {"python-path": "/py"}}},
        }
        executed = [s for s, runs in zip(steps, run_steps(steps, run), strict=True) if runs]
        where = f"environment={environment} save-cache={save}"
        # .venv: `make venv` (pipeline lock) or `make venv-dev` (and the dev lock), with exactly that Python.
        venv = [(line, render(s["env"]["PYTHON"], run)) for s in executed if s is not target for line in run_lines(s)]
        assert venv == [("make venv" if environment == "pipeline" else "make venv-dev", "/py")], where
        caches = cache_steps(executed)
        (uv,) = [c for c in caches if "~/.cache/uv" in c["with"]["path"]]
        (build,) = [c for c in caches if c is not uv]
        assert uv["uses"].startswith("actions/cache@") is (save == "true"), f"{where}: uv's cache saved by its filler"
        saves_build = save == "true" and environment == "pipeline"
        assert build["uses"].startswith("actions/cache@") is saves_build, f"{where}: build/cache saved by the build"
        assert hashed_files(uv["with"]["key"], run) == synced[environment], f"{where}: keyed by the locks it syncs"
        assert hashed_files(build["with"]["key"], run) == {lock["layer_lock"], "ci/policy/runtime-*.txt"}
        for cache in (uv, build):
            key, restore = (render(cache["with"][k], run, hash_files=lambda *f: "h") for k in ("key", "restore-keys"))
            assert key.startswith(restore) and "py3.12-" in key, f"{where}: per Python, any earlier run restores"
        paths = build["with"]["path"].split()
        assert str((REPO_ROOT / "build" / "cache").relative_to(REPO_ROOT)) in paths and "~/.cache/pip" in paths
        assert {
            *("!build/cache/bootstrap", "!build/cache/pins-fixtures"),
            *("!build/cache/mypy", "!build/cache/test-durations.json"),
        } <= set(paths), "each cache has one filler"
        # Hundreds of MB each, made again in seconds from the wheels and zips the cache holds.
        assert {"!build/cache/unpacked", "!build/cache/unpacked-layers"} <= set(paths)
        # Outputs a writer of the cache could forge: used only under the seal of the machine that made them.
        sealed = {"bytecode", "strip", "proofs", "verify", "pyc", "runtime-*"}
        assert {f"!build/cache/{name}" for name in sealed} <= set(paths)


def workflow_caches_of(path_part: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(workflow file, job) -> its cache step whose paths name `path_part`."""
    return {
        (path.name, job_id): step
        for path in WORKFLOWS
        for job_id, job in jobs(path).items()
        for step in cache_steps(job.get("steps", []))
        if path_part in step["with"]["path"]
    }


def setup_saves(job: dict[str, Any]) -> str | None:
    """The environment whose caches the job's set-up saves, or None."""
    for step in job.get("steps", []):
        if step.get("uses") == "./.github/actions/setup" and step.get("with", {}).get("save-cache") == "true":
            return str(step["with"]["environment"])
    return None


def test_each_cache_is_saved_by_exactly_the_job_that_fills_it() -> None:
    saving = {
        (path.name, job_id): env
        for path in WORKFLOWS
        for job_id, job in jobs(path).items()
        if (env := setup_saves(job))
    }
    assert saving == {
        ("verify.yml", "build"): "pipeline",  # uv's cache for the pipeline lock, and build/cache (layer, runtime)
        ("pull-request.yml", "test"): "dev",  # uv's cache for pipeline + dev
        ("deploy.yml", "test"): "dev",  # the same job on main, whose caches every pull request can restore
    }
    fixtures = workflow_caches_of("pins-fixtures")
    assert set(fixtures) == {("pull-request.yml", "test"), ("deploy.yml", "test")}, "filled by the tests only"
    lint_and_times = workflow_caches_of("build/cache/mypy")
    assert set(lint_and_times) == set(fixtures), "mypy's cache and the test times: filled by lint and tests only"
    for step in lint_and_times.values():
        assert step["uses"].startswith("actions/cache@")
        assert step["with"]["path"].split() == ["build/cache/mypy", "build/cache/test-durations.json"]
        assert step["with"]["key"].startswith(step["with"]["restore-keys"]), "any earlier run's cache is restored"
    from tests.pins_fixtures import FIXTURE_CACHE, FOREIGN_LOCK

    for step in fixtures.values():
        assert step["uses"].startswith("actions/cache@") and step["with"]["path"] == str(
            FIXTURE_CACHE.relative_to(REPO_ROOT)
        )
        key = step["with"]["key"]
        assert f"'{FOREIGN_LOCK.relative_to(REPO_ROOT)}'" in key and "'tests/pins_fixtures.py'" in key
        assert "steps.setup.outputs.python-version" in key, "the venv links to that exact interpreter"


def test_cheap_checks_fail_before_the_expensive_steps() -> None:
    build = commands(jobs(VERIFY)["build"])
    assert build.index("make lock-check") < build.index("make train") < build.index("make build")
    for path in (PULL_REQUEST, DEPLOY):
        test = commands(jobs(path)["test"])
        assert test.index("make lint") < test.index("make test"), "ruff, mypy and actionlint before pytest"
    lint = (REPO_ROOT / "Makefile").read_text().split("\nlint:")[1].split("\n\n")[0]
    assert "actionlint" in lint, "make lint lints the workflows too"


def test_dependabot_keeps_only_the_actions_with_a_cooldown() -> None:
    """Dependabot's pip updates edit a lock in place for its own host: every one failed lock-check."""
    updates = load(DEPENDABOT)["updates"]
    assert [u["package-ecosystem"] for u in updates] == ["github-actions"], "the locks are relock.yml's job"
    (actions,) = updates
    assert {"/", "/.github/actions/setup"} <= set(actions["directories"])
    assert actions["cooldown"]["default-days"] >= 3, "a fresh release waits before it is proposed"


def test_the_vendored_dependabot_schema_checks_cooldown(tmp_path: Path) -> None:
    """Control: the schema test above would catch a misspelt or out-of-range cooldown."""
    broken = tmp_path / "dependabot.yml"
    broken.write_text(DEPENDABOT.read_text().replace("default-days: 7", "default-days: 400"))
    result = subprocess.run(
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(broken)],
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    assert result.returncode != 0 and "default-days" in result.stdout + result.stderr


# --- the weekly re-lock --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param({}, {"relock", "verify", "pull-request"}, id="all passed"),
        pytest.param(
            {"verify": Outcome("failure")}, {"relock", "verify", "pull-request"}, id="a check failed: say which"
        ),
        pytest.param({"relock": Outcome("failure")}, {"relock"}, id="nothing re-locked"),
    ],
)
def test_relock_runs(outcomes: dict[str, Outcome], expected: set[str]) -> None:
    workflow = load(RELOCK)
    for event in ("schedule", "workflow_dispatch"):
        assert triggered(workflow, event, MAIN)
        run = contexts(event, MAIN, {"packages": ""})
        assert ran(run_jobs(workflow["jobs"], run, outcomes)) == expected, event
        assert run_jobs(workflow["jobs"], run, outcomes, cancelled=True)["pull-request"].result == "skipped"


def test_relock_upgrades_what_was_asked() -> None:
    step = next(s for s in jobs(RELOCK)["relock"]["steps"] if "lock --upgrade" in str(s.get("run")))
    assert argv_of(step) == ["python", "-m", "ci", "lock", "--upgrade", "$PACKAGES"]
    assert (
        render(step["env"]["PACKAGES"], contexts("workflow_dispatch", MAIN, {"packages": "numpy scipy"}))
        == "numpy scipy"
    )
    assert render(step["env"]["PACKAGES"], contexts("schedule", MAIN)) == "", "a scheduled run upgrades everything"


def test_relock_verifies_with_the_verify_workflows_commands_and_runs_every_check() -> None:
    verify_jobs = jobs(VERIFY)
    expected = [n for c in commands(verify_jobs["build"]) if (n := step_name(c))]
    expected += sorted({n for job in CHECK_JOBS for c in commands(verify_jobs[job]) if (n := step_name(c))})
    job = jobs(RELOCK)["verify"]
    names = [n for c in commands(job) if (n := step_name(c))]
    assert names[0] == "venv", "the upgraded requirements-pipeline.txt is installed before training"
    assert names[1:4] == expected[:3] and sorted(names[4:]) == expected[3:]
    assert ".venv/bin/python -m ci budget --baseline-ref origin/main" in commands(job)
    steps = job["steps"]
    first_check = next(i for i, s in enumerate(steps) if run_lines(s) and step_name(run_lines(s)[0]) == expected[0])
    for failing in range(first_check, len(steps)):
        later = run_steps(steps, contexts("schedule"), failing)[failing + 1 :]
        assert all(later), f"a failure of step {failing} hides the checks after it: one failure must not hide the rest"
    assert [d["with"] for d in artifact_steps(job, "download-artifact")] == [{"name": "relock-files", "path": "."}]


# --- `make pipeline` is the same commands in the same order --------------------------------------


def step_name(command: str) -> str | None:
    """A pipeline command, spelled the same whichever way it is invoked (make X / python -m ci X)."""
    argv = shlex.split(command.replace("$(CI)", "python -m ci").replace("$(PY)", "python"))
    argv = ["python" if arg.endswith("/python") else arg for arg in argv]
    if argv[:1] == ["make"]:
        return {"lock-check": "lock --check", "train": "training"}.get(argv[1], argv[1])
    if argv[:3] == ["python", "-m", "training"]:
        return "training"
    if argv[:3] == ["python", "-m", "ci"]:
        rest = [arg for arg in argv[3:] if not arg.startswith("--baseline")]
        return " ".join(rest[:2] if rest[1:2] == ["--check"] else rest[:1])
    return None


def test_make_pipeline_runs_what_the_workflows_run_in_the_same_order() -> None:
    recipe: list[str] = []
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pipeline:"))
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        name = step_name(line.strip())
        if name:
            recipe.append(name)
    verify = jobs(VERIFY)
    build = [n for c in commands(verify["build"]) if (n := step_name(c))]
    checks = {n for job in CHECK_JOBS for c in commands(verify[job]) if (n := step_name(c))}
    deploy = [n for c in commands(jobs(DEPLOY)["deploy"]) if (n := step_name(c))]
    model = [n for c in commands(verify["model"]) if (n := step_name(c))]
    assert model == ["model-report"]
    assert recipe.index("model-report") == recipe.index("training") + 1, "the model report right after training"
    recipe.remove("model-report")
    assert build == ["lock --check", "training", "build"]
    assert checks == set(CHECK_JOBS)
    assert deploy == ["deploy"]
    assert recipe[:3] == build, "make pipeline must start like the build job"
    assert set(recipe[3:-1]) == checks, "make pipeline must run every check the verify workflow runs"
    assert recipe[-1:] == deploy


def test_the_deploy_role_trusts_exactly_this_workflows_branch_and_environment() -> None:
    """The bootstrap template's OIDC trust (infra/template.yaml) must match what deploy.yml presents."""

    template_path = REPO_ROOT / "infra" / "template.yaml"
    assert template_path.is_file(), "infra/template.yaml (the deploy role's trust policy) is missing"
    template = yaml.load(template_path.read_text(), Loader=cfn_loader())  # noqa: S506  (a SafeLoader)
    parameters = template["Parameters"]
    assert triggers(load(DEPLOY))["push"]["branches"] == [parameters["DeployBranch"]["Default"]]
    for job_id in ("deploy", "rollback"):
        assert jobs(DEPLOY)[job_id]["environment"] == parameters["DeployEnvironment"]["Default"]
    assert "DeployRoleArn" in template["Outputs"]
    # `python -m ci.github oidc-subject` prints the subject for the same environment and branch.
    import ci.github.__main__ as deploy_guard

    assert parameters["DeployEnvironment"]["Default"] == deploy_guard.DEFAULT_ENVIRONMENT
    assert parameters["DeployBranch"]["Default"] == deploy_guard.DEFAULT_BRANCH
    (trust,) = template["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    subject = trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]["Sub"]
    assert subject == deploy_guard.expected_subject("${GitHubRepository}", "${DeployEnvironment}", "${DeployBranch}")
