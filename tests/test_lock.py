"""The lock check on copies of the committed locks with one thing broken, and the real compile.

Offline tests judge files only; network tests ask PyPI's JSON API through the shared cache in
build/cache/pypi-simple (one request per project at most) and uv through build/cache/uv.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from ci.config import Config, load_config, load_policy
from ci.errors import ConfigError, PipelineError
from ci.lock.check import (
    LockCheckError,
    LockProblem,
    check_locks,
)
from ci.lock.resolve import compile_all, lock_jobs
from ci.paths import REPO_ROOT, BuildPaths
from ci.pip import SimpleIndex, target_platforms, target_tags
from tests.config_fixtures import RUNTIMES, TARGET, WHEEL_TAG, edited_config, runtime_config
from tests.conftest import run_cli

PYTHON_RUNTIME = TARGET.runtime.name

LOCK_FILES = [
    "pipeline.toml",
    "requirements.in",
    "requirements-layer.txt",
    "requirements-pipeline.in",
    "requirements-pipeline.txt",
    "requirements-dev.in",
    "requirements-dev.txt",
    "requirements-bootstrap.txt",
    "training/requirements.in",
    "training/requirements.txt",
]
CACHE = REPO_ROOT / "build" / "cache"

# Every [lock] path key: a copied repository points them all at its own files.
LOCK_KEYS = (
    *("requirements_in", "layer_lock", "training_in", "training_lock"),
    *("pipeline_in", "pipeline_lock", "dev_in", "dev_lock", "bootstrap_lock"),
)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's lock inputs and outputs, safe to break."""
    for name in LOCK_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    return tmp_path


@pytest.fixture(scope="module")
def index() -> SimpleIndex:
    return SimpleIndex("https://pypi.org/simple", CACHE / "pypi-simple")


def config_of(root: Path) -> Config:
    return load_config(root=root)


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def line_of(path: Path, prefix: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix))


def pin_block(path: Path, name: str) -> str:
    """The lines of one pin (requirement, hashes, annotations) in a lock."""
    match = re.search(rf"^{re.escape(name)}==.*?(?=^\S)", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert match, name
    return match.group(0)


def only(problems: list, kind: str) -> list:
    return [p for p in problems if p.kind == kind]


# --- offline: the files alone -------------------------------------------------------------------


def test_committed_locks_pass_the_offline_checks(repo: Path) -> None:
    assert check_locks(config_of(repo), index=None).problems == []


def test_stale_when_requirements_in_gains_a_package(repo: Path) -> None:
    with (repo / "requirements.in").open("a") as handle:
        handle.write("requests\n")

    (problem,) = check_locks(config_of(repo), index=None).problems

    assert problem.kind == "stale"
    assert problem.package == "requests" and problem.file == "requirements-layer.txt"
    assert f"requirements.in:{line_of(repo / 'requirements.in', 'requests')}" in str(problem)
    assert "python -m ci lock" in problem.fix


def test_stale_when_a_direct_requirement_is_dropped_or_changed(repo: Path) -> None:
    edit(repo / "requirements.in", "threadpoolctl\n", "")
    edit(repo / "requirements.in", "scikit-learn==1.3.2", "scikit-learn==1.4.0")

    problems = check_locks(config_of(repo), index=None).problems
    found = {(p.file, p.package): str(p) for p in only(problems, "stale")}

    layer = repo / "requirements-layer.txt"
    assert (
        f"requirements-layer.txt:{line_of(layer, 'threadpoolctl==')}"
        in found[("requirements-layer.txt", "threadpoolctl")]
    )
    assert "no longer asks for it" in found[("requirements-layer.txt", "threadpoolctl")]
    sklearn = found[("requirements-layer.txt", "scikit-learn")]
    assert "pinned 1.3.2" in sklearn and (
        f"requirements.in:{line_of(repo / 'requirements.in', 'scikit-learn')} asks for scikit-learn==1.4.0" in sklearn
    )


def test_unhashed_and_unpinned_lines_are_named_by_line(repo: Path) -> None:
    layer = repo / "requirements-layer.txt"
    edit(
        layer,
        pin_block(layer, "joblib"),
        "joblib==1.6.0\n    # via\n    #   -r requirements.in\n    #   scikit-learn\n",
    )
    edit(layer, "threadpoolctl==3.8.0", "threadpoolctl>=3.8.0")

    problems = check_locks(config_of(repo), index=None).problems

    (unhashed,) = only(problems, "unhashed")
    assert (unhashed.package, unhashed.line) == ("joblib", line_of(layer, "joblib=="))
    assert "--require-hashes" in str(unhashed)
    (unpinned,) = only(problems, "unpinned")
    assert (unpinned.package, unpinned.line) == ("threadpoolctl", line_of(layer, "threadpoolctl>="))
    assert "threadpoolctl>=3.8.0" in str(unpinned)


def test_training_lock_must_agree_with_the_layer(repo: Path) -> None:
    training = repo / "training" / "requirements.txt"
    edit(training, "numpy==1.26.4", "numpy==1.26.3")

    problems = only(check_locks(config_of(repo), index=None).problems, "inconsistent")

    messages = {p.file: str(p) for p in problems}
    assert "training/requirements.txt" in messages
    assert "1.26.3" in messages["training/requirements.txt"]
    assert "requirements-layer.txt:" in messages["training/requirements.txt"]


def test_a_package_the_runtime_provides_must_not_be_in_the_layer(repo: Path) -> None:
    layer = repo / "requirements-layer.txt"
    with layer.open("a") as handle:
        handle.write("boto3==1.38.36 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via pandas\n")

    (problem,) = only(check_locks(config_of(repo), index=None).problems, "provided")
    assert problem.package == "boto3" and "shadows" in str(problem)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_platform_tags_follow_the_exact_glibc(repo: Path, runtime: str) -> None:
    target = runtime_config(runtime, repo).target
    major, minor = target.glibc_tuple
    assert f"{major}.{minor}" == load_policy()[runtime].glibc
    platforms = target_platforms(target)
    assert platforms[0] == f"manylinux_{major}_{minor}_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert f"manylinux_{major}_{minor + 1}_x86_64" not in platforms and "manylinux_2_35_x86_64" not in platforms
    arm = runtime_config(runtime, repo, architecture="arm64").target
    assert set(target_platforms(arm)) >= {f"manylinux_{major}_{minor}_aarch64", "manylinux2014_aarch64"}
    assert not any(p.startswith(("manylinux1", "manylinux2010")) for p in target_platforms(arm))
    tags = target_tags(target)
    own = target.runtime.python_tag
    assert f"{own}-{own}-manylinux_{major}_{minor}_x86_64" in {str(tag) for tag in tags}
    assert {tag.abi for tag in tags if tag.abi.startswith("cp")} == {own}, "another Python's ABI is accepted"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_runtime_decides_every_locks_python(repo: Path, runtime: str) -> None:
    """The layer for the target; training, pipeline and dev for the build host, which runs the target's Python."""
    policy = load_policy()[runtime]
    layer, training, pipeline, dev = lock_jobs(runtime_config(runtime, repo))
    assert (layer.python_version, layer.python_platform) == (policy.python, policy.uv_platform["x86_64"])
    assert training.python_version == pipeline.python_version == dev.python_version == policy.python


def test_the_host_python_is_no_longer_a_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[lock\] has an unknown key host_python"):
        load_config(file=edited_config(tmp_path, "lock", "host_python", 'host_python = "3.11"'))


# --- PyPI's JSON simple API (cached) ---------------------------------------------------------------


def test_committed_layer_lock_has_hashed_target_wheels(repo: Path, index: SimpleIndex) -> None:
    result = check_locks(config_of(repo), index=index)
    assert result.problems == []
    assert result.target_wheels["numpy"] == f"numpy-1.26.4-{WHEEL_TAG}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert set(result.target_wheels) == set(result.locks["layer"]["pins"])


def test_pin_without_a_wheel_for_an_older_glibc_names_tags_and_newest_fit(repo: Path, index: SimpleIndex) -> None:
    """numpy 2.3 needs glibc 2.28: refused for a target held at glibc 2.26 (python3.11's, or stricter)."""
    layer = repo / "requirements-layer.txt"
    hashes = [f.sha256 for f in index.project("numpy").files_of("2.3.0")]
    block = pin_block(layer, "numpy")
    new = "numpy==2.3.0 \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes) + "\n"
    edit(layer, block, new + block[block.index("    # via") :])
    for lock in ("requirements-pipeline.txt", "training/requirements.txt"):
        edit(repo / lock, "numpy==1.26.4", "numpy==2.3.0")  # keep the locks consistent: one problem only

    (problem,) = check_locks(runtime_config(PYTHON_RUNTIME, repo, glibc="2.26"), index=index).problems

    assert problem.kind == "no-target-wheel"
    assert (problem.file, problem.line, problem.package) == (
        "requirements-layer.txt",
        line_of(layer, "numpy=="),
        "numpy",
    )
    message = str(problem)
    assert "manylinux_2_28_x86_64" in message  # what numpy 2.3.0's wheels for the target's Python do have
    assert "glibc 2.26" in message
    newest = re.search(r"newest version that fits: (\S+)", message)
    assert newest and newest.group(1).startswith("2.2."), message  # numpy 2.2 still ships manylinux2014
    assert "numpy==2.2." in problem.fix


def test_hashes_must_include_the_target_wheel_and_nothing_unknown(repo: Path, index: SimpleIndex) -> None:
    layer = repo / "requirements-layer.txt"
    target_wheel = next(
        f for f in index.project("numpy").files_of("1.26.4") if f"{WHEEL_TAG}-manylinux_2_17_x86_64" in f.filename
    )
    edit(layer, f"    --hash=sha256:{target_wheel.sha256} \\\n", "")
    edit(layer, "joblib==1.6.0 \\\n", "joblib==1.6.0 \\\n    --hash=sha256:" + "ab" * 32 + " \\\n")

    problems = only(check_locks(config_of(repo), index=index).problems, "hash")

    by_package = {p.package: str(p) for p in problems}
    assert set(by_package) == {"numpy", "joblib"}
    assert target_wheel.filename in by_package["numpy"]
    assert "match no file of joblib 1.6.0" in by_package["joblib"]


# --- uv: the real compile ----------------------------------------------------------------------------


def test_compile_is_a_no_op_on_the_committed_tree(repo: Path) -> None:
    before = {name: (repo / name).read_bytes() for name in LOCK_FILES}

    changes = compile_all(config_of(repo), uv_cache=CACHE / "uv")

    assert [c.rewritten for c in changes] == [False] * 5, [c.describe() for c in changes]
    assert {name: (repo / name).read_bytes() for name in LOCK_FILES} == before


def test_compile_resolves_a_new_requirement_without_the_runtimes_packages(repo: Path) -> None:
    with (repo / "requirements.in").open("a") as handle:
        handle.write("requests\n")

    (layer_change, *_rest) = compile_all(config_of(repo), uv_cache=CACHE / "uv")

    added = {entry.split("==")[0] for entry in layer_change.added}
    assert {"requests", "idna", "certifi", "charset-normalizer"} <= added
    text = (repo / "requirements-layer.txt").read_text()
    assert "\nurllib3==" not in text and "\nboto3==" not in text  # the runtime provides them
    assert "# urllib3" in text  # listed among the excluded packages
    assert check_locks(config_of(repo), index=None).problems == []


def test_fresh_resolve_finds_what_the_files_alone_cannot(repo: Path) -> None:
    layer = repo / "requirements-layer.txt"
    edit(layer, pin_block(layer, "six"), "")  # a transitive pin lost: every .in line still satisfied

    assert check_locks(config_of(repo), index=None).problems == []
    problems = check_locks(config_of(repo), index=None, resolve=True, uv_cache=CACHE / "uv").problems
    by_file = {p.file: str(p) for p in problems}
    assert all(p.kind == "stale" for p in problems)
    assert "+six==1.17.0" in by_file["requirements-layer.txt"]
    # the host locks are constrained by the layer lock, so their annotations change too
    assert set(by_file) <= {
        *("requirements-layer.txt", "training/requirements.txt", "requirements-pipeline.txt", "requirements-dev.txt")
    }


def test_cli_check_passes_on_the_committed_locks(tmp_path: Path) -> None:
    result = run_cli("-m", "ci", "--build-dir", str(tmp_path), "--cache-dir", str(CACHE), "lock", "--check")
    assert "fresh resolve identical" in result.stdout
    assert '"passed": true' in (tmp_path / "reports" / "lock.json").read_text()


def test_problems_are_reported_together_with_fixes() -> None:
    error = LockCheckError(
        [
            LockProblem("unhashed", "requirements-layer.txt", 7, "joblib", "joblib==1.6.0 has no --hash", "run it"),
            LockProblem("stale", "requirements-layer.txt", None, "requests", "not pinned", "run `python -m ci lock`"),
        ]
    )
    text = str(error)
    assert "2 lock problem(s)" in text
    assert "requirements-layer.txt:7: joblib: joblib==1.6.0 has no --hash" in text
    assert "requirements-layer.txt: requests: not pinned" in text


def test_cli_check_fails_with_file_line_package_and_fix(repo: Path) -> None:
    with (repo / "requirements.in").open("a") as handle:
        handle.write("requests>=2\n")
    config = repo / "pipeline.toml"
    for key in LOCK_KEYS:
        edit(config, f'{key} = "', f'{key} = "{repo}/')  # absolute paths: the CLI's root stays the repository

    result = run_cli(
        "-m",
        "ci",
        "--build-dir",
        str(repo / "build"),
        "--config",
        str(config),
        "lock",
        "--check",
        "--offline",
        check=False,
    )

    assert result.returncode == 1
    assert "1 lock problem(s)" in result.stderr
    assert f"requirements.in:{line_of(repo / 'requirements.in', 'requests')} asks for requests>=2" in result.stderr
    assert "fix: run `python -m ci lock`" in result.stderr
    assert '"passed": false' in (repo / "build" / "reports" / "lock.json").read_text()


# --- a pinned package with no wheel for the runtime's Python ----------------------------------------


def oldest_release_with_wheel(index: SimpleIndex, name: str, python_tag: str, machine: str) -> str:
    """Read independently of ci.lock: the oldest release with a `<tag>-<tag>-manylinux*_<machine>` wheel."""
    pattern = re.compile(rf"{name.replace('-', '_')}-([^-]+)-{python_tag}-{python_tag}-(\S+)\.whl")
    versions = set()
    for file in index.project(name).files:
        found = pattern.fullmatch(file.filename)
        if found and not file.yanked and "manylinux" in found.group(2) and machine in found.group(2):
            versions.add(Version(found.group(1)))
    return str(min(versions))


@pytest.mark.parametrize("command", [["lock"], ["lock", "--check"]], ids=" ".join)
def test_scikit_learn_1_3_2_on_python3_13_is_refused_in_one_message(
    repo: Path, index: SimpleIndex, tmp_path: Path, command: list[str]
) -> None:
    """scikit-learn 1.3.2 has no cp313 wheel: one message naming it, cp313 and the oldest release that has one."""
    from ci import cmd_lock
    from ci.cli import build_parser

    config = runtime_config("python3.13", repo)
    before = {name: (repo / name).read_bytes() for name in LOCK_FILES}
    args = build_parser().parse_args(command)
    with pytest.raises(PipelineError) as raised:
        cmd_lock.run(args, config, BuildPaths(build=tmp_path / "build", cache=CACHE))

    oldest = oldest_release_with_wheel(index, "scikit-learn", "cp313", "x86_64")
    line = line_of(repo / "requirements.in", "scikit-learn==")
    assert raised.value.problem == (
        f"requirements.in:{line}: scikit-learn==1.3.2 has no cp313 manylinux wheel for python3.13 x86_64 "
        f"(glibc 2.34); the oldest scikit-learn release with one is {oldest}"
    )
    fix = raised.value.fix
    assert f"scikit-learn=={oldest}" in fix and "training/requirements.in" in fix and "python -m ci pins" in fix
    assert {name: (repo / name).read_bytes() for name in LOCK_FILES} == before, "nothing was resolved or written"


def test_naming_the_package_to_upgrade_releases_the_refusal(repo: Path, index: SimpleIndex) -> None:
    """`lock --upgrade scikit-learn` repins it in both .in files: the old pin no longer refuses python3.13."""
    from ci.lock.check import check_direct_pins

    config = runtime_config("python3.13", repo)
    with pytest.raises(PipelineError, match=r"scikit-learn==1\.3\.2 has no cp313") as raised:
        check_direct_pins(config, index)
    assert "python -m ci lock --upgrade scikit-learn" in raised.value.fix
    check_direct_pins(config, index, moving=("Scikit_Learn",))
    check_direct_pins(runtime_config("python3.12", repo), index)  # 1.3.2 has cp312 wheels
