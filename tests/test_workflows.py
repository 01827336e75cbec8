"""The GitHub workflows: they lint, match GitHub's schemas, and guarantee what the README promises.

Structural tests read the YAML: deploy waits for budget, pins, ABI and smoke on the same artifacts;
it runs only from main; it downloads instead of building; every `run:` is a command of this
repository (checked by parsing it with the very argument parsers the command uses); every job
has least permissions and a timeout; every third-party action is pinned to a commit SHA.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci.config import load_config
from ci.paths import REPO_ROOT, default_paths

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


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """`on:` (YAML 1.1 reads the bare key as True)."""
    value = workflow.get("on", workflow.get(True))
    return {value: None} if isinstance(value, str) else dict(value or {})


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


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"verify.yml", "pull-request.yml", "deploy.yml", "relock.yml"}
    assert triggers(load(VERIFY)).keys() == {"workflow_call"}


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


STDLIB_COMMANDS = ("python3 -m ci.github ", "python3 -m ci.python ")  # the runner's own python3 (no setup-python)
REPORT_ONLY_JOBS = {
    PULL_REQUEST: {"size-comment"},
    VERIFY: {"target", "verified"},
    DEPLOY: {"branch", "fresh"},
    RELOCK: {"pull-request"},
}


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


def test_jobs_that_only_read_reports_install_nothing() -> None:
    """The comment, the gate, the freshness and branch checks and the re-lock PR run on the runner's Python."""
    for path, job_ids in REPORT_ONLY_JOBS.items():
        for job_id in job_ids:
            job = jobs(path)[job_id]
            uses = [str(step.get("uses", "")) for step in job["steps"]]
            assert not [u for u in uses if u.startswith(("actions/setup-python@", "./.github/actions/setup"))], job_id
            assert not [u for u in uses if u.startswith("actions/cache")], job_id
            assert commands(job) and all(c.startswith("python3 -m ci.github ") for c in commands(job)), job_id


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


# --- permissions, timeouts, pins -----------------------------------------------------------------


def test_least_permissions_and_timeouts_on_every_job() -> None:
    writers: dict[tuple[str, str], set[str]] = {}
    for path in WORKFLOWS:
        workflow = load(path)
        assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
        for job_id, job in workflow["jobs"].items():
            assert isinstance(job.get("permissions"), dict), f"{path.name} {job_id}: no permissions"
            if "uses" not in job:  # a reusable-workflow call takes no timeout; its own jobs have one
                assert isinstance(job.get("timeout-minutes"), int), f"{path.name} {job_id}: no timeout-minutes"
                assert 0 < job["timeout-minutes"] <= 60
            for scope, level in job["permissions"].items():
                assert level in ("read", "write", "none")
                if level == "write":
                    writers.setdefault((scope, level), set()).add(f"{path.stem}.{job_id}")
                elif scope != "contents":
                    pytest.fail(f"{path.name} {job_id}: needless permission {scope}: {level}")
    assert writers == {
        ("pull-requests", "write"): {"pull-request.size-comment", "relock.pull-request"},
        ("contents", "write"): {"relock.pull-request"},
        ("id-token", "write"): {"deploy.deploy", "deploy.rollback"},
    }


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


# --- build once, check in parallel, on the same bytes --------------------------------------------


def artifact_steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"actions/{action}@")]


def commands(job: dict[str, Any]) -> list[str]:
    return [line for step in job.get("steps", []) for line in run_lines(step)]


BUILDING = re.compile(r"^(make (train|build|lock|lock-check|pipeline)\b|.*-m (training|ci (build|lock))\b)")


def test_verify_builds_once_and_uploads_what_every_check_uses() -> None:
    verify = jobs(VERIFY)
    build_commands = commands(verify["build"])
    assert build_commands[:3] == ["make lock-check", "make train", "make build"]  # the cheap check first
    assert build_commands[3:] == [
        ".venv/bin/python -m ci.github summary build/reports/lock.json build/reports/build.json",
        ".venv/bin/python -m ci.github annotate build/reports",
    ]
    upload = artifact_steps(verify["build"], "upload-artifact")
    assert len(upload) == 1 and upload[0]["with"]["name"] == "pipeline-build"
    paths = default_paths()
    expected = {
        str(p.relative_to(REPO_ROOT)) for p in (paths.layer_zip, paths.function_zip, paths.model_dir, paths.reports)
    }
    uploaded = {line.strip().rstrip("/") for line in upload[0]["with"]["path"].splitlines() if line.strip()}
    assert uploaded == expected
    assert upload[0]["with"]["if-no-files-found"] == "error"
    for check in CHECK_JOBS:
        job = verify[check]
        assert needed(job) - {"target"} == {"build"}, f"{check} must start from the build's artifact"
        assert "if" not in job, f"{check} must never be skipped on its own"
        download = artifact_steps(job, "download-artifact")
        assert [d["with"] for d in download] == [{"name": "pipeline-build", "path": "build"}]
        assert not [c for c in commands(job) if BUILDING.match(c)], f"{check} rebuilds"
        assert any(re.search(rf"(make {check}$|-m ci {check}\b)", c) for c in commands(job)), check
        uploads = artifact_steps(job, "upload-artifact")
        assert [u["with"]["name"] for u in uploads] == [f"report-{check}"]
        assert uploads[0]["if"] == "${{ !cancelled() }}", "reports are uploaded even when the check fails"
        assert any("ci.github annotate" in c and f"--check {check}" in c for c in commands(job))
        summaries = [s for s in job["steps"] if "ci.github summary" in str(s.get("run", ""))]
        assert summaries and summaries[0]["if"] == "${{ !cancelled() }}", f"{check} writes no job summary"
        assert f"build/reports/{check}." in summaries[0]["run"], f"{check}'s summary is not its own report"


def test_budget_compares_with_the_base_branch_and_shows_the_summary() -> None:
    budget = jobs(VERIFY)["budget"]
    checkout = next(s for s in budget["steps"] if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "--baseline-ref needs the base branch's commits"
    assert '.venv/bin/python -m ci budget --baseline-ref "$BASELINE_REF"' in commands(budget)
    assert ".venv/bin/python -m ci.github summary build/reports/budget.md" in commands(budget)
    verify_call = jobs(PULL_REQUEST)["verify"]
    assert verify_call["uses"] == "./.github/workflows/verify.yml"
    baseline = verify_call["with"]["budget-baseline-ref"]
    assert "format('origin/{0}', github.base_ref)" in baseline
    assert "github.event_name == 'merge_group' && github.event.merge_group.base_sha" in baseline


def test_the_verified_gate_needs_every_check_and_fails_on_skips() -> None:
    workflow = load(VERIFY)
    gate = workflow["jobs"]["verified"]
    assert set(gate["needs"]) == {"target", "build", *CHECK_JOBS}
    assert gate["if"] == "${{ always() }}", "the gate must run (and fail) when a check was skipped"
    step = next(s for s in gate["steps"] if s.get("id") == "gate")
    assert step["env"]["NEEDS"] == "${{ toJSON(needs) }}"
    argv = shlex.split(step["run"])
    assert argv[:4] == ["python3", "-m", "ci.github", "gate"]
    assert set(argv[argv.index("--require") + 1 :]) == {"target", "build", *CHECK_JOBS}
    assert gate["outputs"]["verified"] == "${{ steps.gate.outputs.verified }}"
    output = triggers(workflow)["workflow_call"]["outputs"]["verified"]
    assert output["value"] == "${{ jobs.verified.outputs.verified }}"


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


# --- deploy --------------------------------------------------------------------------------------


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


def needed(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def upstream(all_jobs: dict[str, dict[str, Any]], job_id: str) -> set[str]:
    """Every job `job_id` waits for, directly or through others."""
    seen: set[str] = set()
    todo = list(needed(all_jobs[job_id]))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needed(all_jobs[current]))
    return seen


def test_deploy_runs_only_from_main_by_push_or_dispatch() -> None:
    on = triggers(load(DEPLOY))
    assert on.keys() == {"push", "workflow_dispatch"}
    assert on["push"] == {"branches": ["main"]}
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["action"]["options"] == ["deploy", "rollback"]
    assert "to_version" in inputs
    for job_id in ("deploy", "rollback"):
        assert "github.ref == 'refs/heads/main'" in jobs(DEPLOY)[job_id]["if"], job_id
    for path in (VERIFY, PULL_REQUEST, RELOCK):
        for job_id, job in jobs(path).items():
            assert "environment" not in job and "id-token" not in job.get("permissions", {}), (path.name, job_id)
            assert not [c for c in commands(job) if re.search(r"(make deploy|-m ci (deploy|rollback))", c)]


def test_a_run_on_another_branch_fails_instead_of_skipping_everything() -> None:
    """A dispatch from a feature branch used to skip every job: a green run that deployed nothing."""
    deploy_jobs = jobs(DEPLOY)
    branch = deploy_jobs["branch"]
    assert "if" not in branch, "the branch check must run on every event"
    _, args = github_command(branch, "deploy-freshness")
    assert args[args.index("--branch") + 1] == triggers(load(DEPLOY))["push"]["branches"][0]
    assert "--ref-only" in args
    for job_id in deploy_jobs.keys() - {"branch"}:
        assert "branch" in upstream(deploy_jobs, job_id), f"{job_id} must wait for the branch check"
        assert not re.search(r"always\(\)|failure\(\)|cancelled\(\)", str(deploy_jobs[job_id].get("if", ""))), job_id


def test_deploy_runs_the_pull_request_lint_and_tests_first() -> None:
    deploy_jobs, pr_jobs = jobs(DEPLOY), jobs(PULL_REQUEST)
    assert deploy_jobs["test"]["steps"] == pr_jobs["test"]["steps"], "the same lint and tests as pull requests"
    assert "make test" in commands(deploy_jobs["test"])
    assert {"test", "verify"} <= needed(deploy_jobs["deploy"])
    assert deploy_jobs["test"]["if"] == deploy_jobs["verify"]["if"], "tested whenever it is verified"


def test_deploy_needs_budget_pins_abi_and_smoke_through_the_gate() -> None:
    deploy_jobs = jobs(DEPLOY)
    assert deploy_jobs["verify"]["uses"] == "./.github/workflows/verify.yml"
    deploy = deploy_jobs["deploy"]
    assert {"verify", "test", "fresh"} == needed(deploy)
    assert "needs.verify.outputs.verified == 'true'" in deploy["if"]
    assert not re.search(r"always\(\)|failure\(\)|cancelled\(\)", deploy["if"]), "must not run past a failure"
    # The reusable workflow's `verified` output is set by the gate job, which needs all four checks
    # (test_the_verified_gate_needs_every_check_and_fails_on_skips) and is 'true' only on success
    # (tests/test_workflows_github.py runs the gate command).
    deploying = [job_id for job_id, job in deploy_jobs.items() if any(c == "make deploy" for c in commands(job))]
    assert deploying == ["deploy"], "only the gated job may upload to S3"


def test_a_commit_that_is_no_longer_the_tip_of_main_is_not_deployed() -> None:
    """Asked after tests and verify, so an older run that finishes last cannot replace a newer commit."""
    deploy_jobs = jobs(DEPLOY)
    fresh = deploy_jobs["fresh"]
    assert {"test", "verify"} <= upstream(deploy_jobs, "fresh")
    step, args = github_command(fresh, "deploy-freshness")
    assert "--ref-only" not in args and args[args.index("--branch") + 1] == "main"
    assert step["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert fresh["outputs"]["fresh"] == f"${{{{ steps.{step['id']}.outputs.fresh }}}}"
    assert fresh["permissions"] == {"contents": "read"}
    assert "needs.fresh.outputs.fresh == 'true'" in deploy_jobs["deploy"]["if"]
    assert "fresh" not in upstream(deploy_jobs, "rollback"), "a rollback goes back on purpose"


def test_the_deploy_job_checks_out_the_history_the_order_check_needs() -> None:
    """`ci deploy` refuses an ancestor of the live commit; a depth-1 clone cannot prove the order."""
    (checkout,) = [
        step for step in jobs(DEPLOY)["deploy"]["steps"] if str(step.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkout["with"]["fetch-depth"] == 0


def test_the_whole_deploy_run_is_one_queue_that_is_never_cancelled() -> None:
    workflow = load(DEPLOY)
    assert workflow["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    for job_id, job in workflow["jobs"].items():
        assert "concurrency" not in job, f"{job_id}: a job in the run's own group would wait for itself"


def test_deploy_uses_the_verified_artifacts_without_rebuilding() -> None:
    deploy = jobs(DEPLOY)["deploy"]
    downloads = [d["with"] for d in artifact_steps(deploy, "download-artifact")]
    assert {"name": "pipeline-build", "path": "build"} in downloads
    assert {"pattern": "report-*", "merge-multiple": True, "path": "build/reports"} in downloads
    assert not [c for c in commands(deploy) if BUILDING.match(c)]
    steps = deploy["steps"]
    order = [i for i, s in enumerate(steps) if "download-artifact@" in str(s.get("uses", ""))]
    deploy_index = next(i for i, s in enumerate(steps) if s.get("run") == "make deploy")
    assert max(order) < deploy_index
    assert "if" not in steps[deploy_index]


@pytest.mark.parametrize("job_id", ["deploy", "rollback"])
def test_production_jobs_use_oidc_an_environment_and_one_allowed_account(job_id: str) -> None:
    job = jobs(DEPLOY)[job_id]
    assert job["environment"] == "production"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    aws = [s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
    assert len(aws) == 1
    given = aws[0]["with"]
    assert given["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & given.keys(), "no stored keys"
    region_step, args = github_command(job, "config")
    assert args == ["region=deploy.region"]
    assert given["aws-region"] == f"${{{{ steps.{region_step['id']}.outputs.region }}}}"
    # allowed-account-ids comes from a step that fails when vars.AWS_ACCOUNT_ID is unset (an empty
    # input would silently turn the action's account check off) or names another account than the role.
    account_step, args = github_command(job, "aws-account")
    assert args == []
    assert account_step["env"] == {
        "AWS_ACCOUNT_ID": "${{ vars.AWS_ACCOUNT_ID }}",
        "AWS_DEPLOY_ROLE_ARN": "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
    }
    assert given["allowed-account-ids"] == f"${{{{ steps.{account_step['id']}.outputs.account-id }}}}"
    assert job["steps"].index(account_step) < job["steps"].index(aws[0])


def test_deploy_reads_no_stored_secret_but_the_job_token_and_never_beside_aws_credentials() -> None:
    assert set(re.findall(r"secrets\.(\w+)", DEPLOY.read_text())) == {"GITHUB_TOKEN"}
    for job_id, job in jobs(DEPLOY).items():
        if "secrets." in yaml.safe_dump(job):
            assert "id-token" not in job["permissions"], f"{job_id}: the token beside the AWS sign-in"


def test_rollback_skips_the_build() -> None:
    deploy_jobs = jobs(DEPLOY)
    assert "inputs.action == 'deploy'" in deploy_jobs["verify"]["if"]
    rollback = deploy_jobs["rollback"]
    assert upstream(deploy_jobs, "rollback") == {"branch"}
    assert "inputs.action == 'rollback'" in rollback["if"]
    assert set(commands(rollback)) >= {
        ".venv/bin/python -m ci rollback",
        '.venv/bin/python -m ci rollback --to "$TO_VERSION"',
    }
    assert not artifact_steps(rollback, "download-artifact")


# --- pull requests -------------------------------------------------------------------------------


def test_pull_requests_run_lint_tests_and_one_sticky_comment() -> None:
    workflow = load(PULL_REQUEST)
    assert triggers(workflow).keys() == {"pull_request", "merge_group"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    pr_jobs = workflow["jobs"]
    assert "make test" in commands(pr_jobs["test"])
    comment = pr_jobs["size-comment"]
    assert comment["needs"] == "verify"
    assert "!cancelled()" in comment["if"], "the comment must also appear when the budget fails"
    assert comment["permissions"] == {"contents": "read", "pull-requests": "write"}
    download = artifact_steps(comment, "download-artifact")
    assert download[0]["with"] == {"name": "report-budget", "path": "build/reports"}
    post = next(s for s in comment["steps"] if "ci.github comment" in str(s.get("run")))
    argv = shlex.split(post["run"])
    assert argv[argv.index("--marker") + 1] == "<!-- size-budget -->"
    # The model first: its verdict is one line (details folded when unchanged); the size report is long.
    assert argv[argv.index("--body") + 1 :] == ["build/reports/model-report.md", "build/reports/budget.md"]
    assert post["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert [d["with"] for d in download] == [
        {"name": "report-budget", "path": "build/reports"},
        {"name": "report-model", "path": "build/reports"},
    ]
    assert all(d.get("continue-on-error") is True for d in download), "a missing report is said, not fatal"


def test_the_model_report_compares_with_the_base_branch_and_shows_the_summary() -> None:
    model = jobs(VERIFY)["model"]
    assert needed(model) == {"target", "build"}, "the build's model, on the machine that trained it"
    assert model["runs-on"] == "${{ needs.target.outputs.runner }}"
    checkout = next(s for s in model["steps"] if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "the base model is trained from the base branch's commit"
    assert [d["with"] for d in artifact_steps(model, "download-artifact")] == [
        {"name": "pipeline-build", "path": "build"}
    ]
    step = next(s for s in model["steps"] if "ci model-report" in str(s.get("run")))
    assert step["run"] == '.venv/bin/python -m ci model-report --base-ref "$BASE_REF"'
    assert step["env"] == {"BASE_REF": "${{ inputs.model-base-ref }}"}
    assert ".venv/bin/python -m ci.github summary build/reports/model-report.md" in commands(model)
    assert [u["with"]["name"] for u in artifact_steps(model, "upload-artifact")] == ["report-model"]
    assert "model" not in jobs(VERIFY)["verified"]["needs"], "informational: training's gate judges quality"
    base = jobs(PULL_REQUEST)["verify"]["with"]["model-base-ref"]
    assert base == jobs(PULL_REQUEST)["verify"]["with"]["budget-baseline-ref"], "both compare with the same base"


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
    assert command == "python3 -m ci.python --version --github-output"
    version = subprocess.run([sys.executable, *command.split()[1:]], cwd=REPO_ROOT, capture_output=True, text=True)
    assert version.stdout.strip() == config.target.runtime.python
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "${{ steps.target.outputs.python }}"
    assert not re.search(r"3\.1\d|py31\d", yaml.safe_dump(action)), "a Python version is hard-coded"
    # .venv: `make venv` (pipeline lock) or `make venv-dev` (and the dev lock), with exactly that Python.
    venvs = {s["if"]: run_lines(s) for s in steps if run_lines(s) and s is not target}
    assert venvs == {
        "inputs.environment == 'pipeline'": ["make venv"],
        "inputs.environment == 'dev'": ["make venv-dev"],
    }
    for step in steps:
        if run_lines(step) and step is not target:
            assert step["env"]["PYTHON"] == "${{ steps.python.outputs.python-path }}"
    lock = {key: config.value("lock", key) for key in ("pipeline_lock", "dev_lock", "bootstrap_lock", "layer_lock")}
    caches = cache_steps(steps)
    uv_caches = [c for c in caches if "~/.cache/uv" in c["with"]["path"]]
    build_caches = [c for c in caches if c not in uv_caches]
    assert len(uv_caches) == 2 and len(build_caches) == 2  # each: save (the job that fills it) / restore-only
    for cache in caches:
        key = cache["with"]["key"]
        assert "py${{ steps.target.outputs.python }}-" in key and key.startswith(cache["with"]["restore-keys"])
        saving = cache["uses"].startswith("actions/cache@")
        assert ("inputs.save-cache == 'true'" in cache["if"]) is saving, cache["name"]
    for cache in uv_caches:  # keyed by exactly the locks each environment syncs
        key = cache["with"]["key"]
        dev, pipeline = key.split("inputs.environment == 'dev' && ")[1].split(" || ")
        for name in (lock["bootstrap_lock"], lock["pipeline_lock"]):
            assert f"'{name}'" in dev and f"'{name}'" in pipeline
        assert f"'{lock['dev_lock']}'" in dev and f"'{lock['dev_lock']}'" not in pipeline
    for cache in build_caches:
        paths = cache["with"]["path"].split()
        assert str(default_paths().cache.relative_to(REPO_ROOT)) in paths and "~/.cache/pip" in paths
        assert {
            *("!build/cache/bootstrap", "!build/cache/pins-fixtures"),
            *("!build/cache/mypy", "!build/cache/test-durations.json"),
        } <= set(paths), "each cache has one filler"
        # Hundreds of MB each, made again in seconds from the wheels and zips the cache holds.
        assert {"!build/cache/unpacked", "!build/cache/unpacked-layers"} <= set(paths)
        # Outputs a writer of the cache could forge: used only under the seal of the machine that made them.
        sealed = {"bytecode", "strip", "proofs", "verify", "pyc", "runtime-*"}
        assert {f"!build/cache/{name}" for name in sealed} <= set(paths)
        assert f"'{lock['layer_lock']}'" in cache["with"]["key"] and "ci/policy/runtime-*.txt" in cache["with"]["key"]
        if cache["uses"].startswith("actions/cache@"):
            assert "inputs.environment == 'pipeline'" in cache["if"], "build/cache is saved by the build only"


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


# --- merge queues --------------------------------------------------------------------------------


def test_merge_groups_run_the_same_required_checks_and_skip_the_comment() -> None:
    workflow = load(PULL_REQUEST)
    assert "merge_group" in triggers(workflow)
    pr_jobs = workflow["jobs"]
    assert pr_jobs["test"]["name"] == "lint and tests" and "if" not in pr_jobs["test"]
    assert "if" not in pr_jobs["verify"], "verify (and its `verified` gate) must report for a merge group"
    assert "github.event_name == 'pull_request'" in pr_jobs["size-comment"]["if"], "no PR number in a merge group"
    group = workflow["concurrency"]["group"]
    assert "github.event.pull_request.number ||" in group, "merge groups must not share one cancelling group"


# --- the weekly re-lock --------------------------------------------------------------------------


def test_relock_runs_weekly_and_on_demand_with_optional_packages() -> None:
    on = triggers(load(RELOCK))
    assert on.keys() == {"schedule", "workflow_dispatch"}
    assert len(on["schedule"]) == 1 and on["schedule"][0]["cron"].endswith("* * 1")
    packages = on["workflow_dispatch"]["inputs"]["packages"]
    assert packages["required"] is False and packages["default"] == ""
    relock = jobs(RELOCK)["relock"]
    step = next(s for s in relock["steps"] if "lock --upgrade" in str(s.get("run")))
    assert argv_of(step) == ["python", "-m", "ci", "lock", "--upgrade", "$PACKAGES"]
    assert step["env"] == {"PACKAGES": "${{ inputs.packages }}"}


def test_relock_verifies_with_the_verify_workflows_commands_and_runs_every_check() -> None:
    verify_jobs = jobs(VERIFY)
    expected = [n for c in commands(verify_jobs["build"]) if (n := step_name(c))]
    expected += sorted({n for job in CHECK_JOBS for c in commands(verify_jobs[job]) if (n := step_name(c))})
    job = jobs(RELOCK)["verify"]
    assert job["needs"] == "relock"
    names = [n for c in commands(job) if (n := step_name(c))]
    assert names[0] == "venv", "the upgraded requirements-pipeline.txt is installed before training"
    assert names[1:4] == expected[:3] and sorted(names[4:]) == expected[3:]
    assert ".venv/bin/python -m ci budget --baseline-ref origin/main" in commands(job)
    checks = [s for s in job["steps"] if run_lines(s) and step_name(run_lines(s)[0]) in expected[1:]]
    assert checks and all(s.get("if") == "${{ !cancelled() }}" for s in checks), "one failure must not hide the rest"
    download = artifact_steps(job, "download-artifact")
    assert [d["with"] for d in download] == [{"name": "relock-files", "path": "."}]


def test_only_the_pull_request_job_can_write_and_it_runs_no_upgraded_code() -> None:
    relock_jobs = jobs(RELOCK)
    pr = relock_jobs["pull-request"]
    assert pr["permissions"] == {"contents": "write", "pull-requests": "write"}
    for job_id in relock_jobs.keys() - {"pull-request"}:
        assert relock_jobs[job_id]["permissions"] == {"contents": "read"}, job_id
    assert needed(pr) == {"relock", "verify"}
    assert "!cancelled()" in pr["if"] and "needs.relock.result == 'success'" in pr["if"]
    assert commands(pr) == ["python3 -m ci.github relock-pr --reports build/reports --branch ci/relock --base main"], (
        "no make, no .venv: nothing from the upgraded packages runs beside the write token"
    )
    step, _ = github_command(pr, "relock-pr")
    assert step["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    names = [d["with"]["name"] for d in artifact_steps(pr, "download-artifact")]
    assert names == ["relock-files", "relock-reports"]


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

    class CloudFormationLoader(yaml.SafeLoader):
        pass

    def any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    CloudFormationLoader.add_multi_constructor("!", any_tag)
    template_path = REPO_ROOT / "infra" / "template.yaml"
    assert template_path.is_file(), "infra/template.yaml (the deploy role's trust policy) is missing"
    template = yaml.load(template_path.read_text(), Loader=CloudFormationLoader)
    parameters = template["Parameters"]
    assert triggers(load(DEPLOY))["push"]["branches"] == [parameters["DeployBranch"]["Default"]]
    for job_id in ("deploy", "rollback"):
        assert jobs(DEPLOY)[job_id]["environment"] == parameters["DeployEnvironment"]["Default"]
    assert "DeployRoleArn" in template["Outputs"]
    # `python -m ci.github oidc-subject` prints the subject for the same environment and branch.
    from ci.github import oidc

    assert parameters["DeployEnvironment"]["Default"] == oidc.DEFAULT_ENVIRONMENT
    assert parameters["DeployBranch"]["Default"] == oidc.DEFAULT_BRANCH
    (trust,) = template["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    subject = trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subject == oidc.expected_subject("${GitHubRepository}", "${DeployEnvironment}", "${DeployBranch}")
