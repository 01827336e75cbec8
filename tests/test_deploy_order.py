"""Never backwards: a deploy of a commit older than the live version's is refused unless asked for.

The commits are real: a throwaway git repository with a short history, and the live commit is
read back from the published version's description in moto, as a later run would read it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ci.config import Config
from ci.deploy.aws import Aws
from ci.deploy.deployer import DeployFailedError, Provenance, deploy, detect, rollback
from ci.deploy.target import read_outputs

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, CallLog, FakeBuild, alias_version  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository with three commits, oldest first."""
    repo = tmp_path / "repo"
    repo.mkdir()
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    commits = []
    for n in range(3):
        (repo / "file").write_text(str(n))
        subprocess.run(["git", "-C", str(repo), "add", "file"], check=True)
        subprocess.run(["git", "-C", str(repo), *identity, "commit", "-q", "-m", str(n)], check=True)
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        commits.append(head.stdout.strip())
    return repo, commits


def test_a_deploy_of_an_ancestor_commit_is_refused_and_allowed_with_the_override(
    ci_log: pytest.LogCaptureFixture, aws: Aws, config: Config, build: FakeBuild, history: tuple[Path, list[str]]
):
    repo, (_, middle, new) = history
    check = BytesCheck(build)
    first = deploy(config, build.paths, aws, verifier=check, provenance=detect(repo, new), git_repo=repo)
    live = aws.lambda_.get_function_configuration(FunctionName=config.function.name, Qualifier=first.version)
    assert f"commit {new}" in live["Description"]
    assert check.build_digests()["function.zip"][:16] in live["Description"]

    build.make(model="rerun of an old workflow run")
    calls = CallLog(aws)
    with pytest.raises(DeployFailedError) as refused:
        deploy(config, build.paths, aws, verifier=check, provenance=detect(repo, middle), git_repo=repo)

    message = str(refused.value)
    assert "step 'commit order'" in message
    assert f"commit {middle[:12]} is older than commit {new[:12]} of live version 1" in message
    assert "--allow-older" in refused.value.fix and "python -m ci rollback" in refused.value.fix
    assert "production is unchanged (alias live -> version 1)" in message
    assert calls.count("lambda:PublishVersion", "lambda:UpdateFunctionCode", "lambda:UpdateAlias") == 0
    stack = read_outputs(aws, config)
    listed = aws.s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"{stack.key_prefix}/model/").get("Contents", [])
    assert len(listed) == 1  # the older model was never uploaded

    allowed = deploy(
        config, build.paths, aws, verifier=check,
        provenance=detect(repo, middle), git_repo=repo, allow_older=True,
    )  # fmt: skip
    assert allowed.version == "2" and alias_version(aws, config) == "2"
    assert any("deploying anyway (--allow-older)" in line for line in ci_log.messages)

    # a newer commit goes forward without the flag, and rollback goes back without it
    build.make(model="newest")
    assert deploy(config, build.paths, aws, verifier=check, provenance=detect(repo, new), git_repo=repo).version == "3"
    assert rollback(config, build.paths, aws, verifier=check)["to_version"] == "2"
    assert alias_version(aws, config) == "2"


def test_a_live_commit_this_clone_does_not_have_is_refused_unless_overridden(
    aws: Aws, config: Config, build: FakeBuild, history: tuple[Path, list[str]]
):
    repo, commits = history
    stranger = Provenance("c" * 40, None, "--commit")  # e.g. deployed from a commit that was force-pushed away
    deploy(config, build.paths, aws, verifier=BytesCheck(build), provenance=stranger, git_repo=repo)
    build.make(model="m2")

    with pytest.raises(DeployFailedError) as refused:
        deploy(
            config,
            build.paths,
            aws,
            verifier=BytesCheck(build),
            provenance=detect(repo, commits[-1]),
            git_repo=repo,
        )

    assert f"this clone does not have {'c' * 40}" in str(refused.value)
    assert "fetch-depth: 0" in refused.value.fix
    assert alias_version(aws, config) == "1"
    deploy(
        config, build.paths, aws, verifier=BytesCheck(build),
        provenance=detect(repo, commits[-1]), git_repo=repo, allow_older=True,
    )  # fmt: skip
    assert alias_version(aws, config) == "2"


def test_the_commit_comes_from_the_flag_then_github_sha_then_head(history: tuple[Path, list[str]]):
    repo, commits = history
    assert detect(repo, commits[0][:10], environ={"GITHUB_SHA": commits[1]}) == Provenance(commits[0], None, "--commit")
    assert detect(repo, None, environ={"GITHUB_SHA": commits[1]}).commit == commits[1]
    head = detect(repo, None, environ={})
    assert head == Provenance(commits[2], False, "git HEAD")
    (repo / "file").write_text("edited")
    assert detect(repo, None, environ={}).dirty is True
    assert detect(repo, None, environ={}).describe() == f"commit {commits[2]} dirty"


def test_in_a_shallow_clone_an_unproven_order_is_refused(
    aws: Aws, config: Config, build: FakeBuild, history: tuple[Path, list[str]], tmp_path: Path
):
    """Both commits fetched at depth 1 (as a re-run of an old workflow run would have them): no ancestry
    is visible, which must not pass for "diverged, so allowed"."""
    repo, (_, middle, new) = history
    subprocess.run(["git", "-C", str(repo), "branch", "older", middle], check=True)
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{repo}", str(clone)], check=True
    )
    assert detect(clone, middle).commit == middle  # both commits are there, their link is not
    deploy(config, build.paths, aws, verifier=BytesCheck(build), provenance=detect(clone, new), git_repo=clone)
    build.make(model="m2")

    with pytest.raises(DeployFailedError) as refused:
        deploy(
            config,
            build.paths,
            aws,
            verifier=BytesCheck(build),
            provenance=detect(clone, middle),
            git_repo=clone,
        )

    assert "this clone is shallow" in str(refused.value) and "fetch-depth: 0" in refused.value.fix
    assert alias_version(aws, config) == "1"
