"""`python -m ci budget --what-if`: real resolver, real wheels from a file:// index, the build's own rules.

The mini repository (tests/what_if_fixtures.py) is made once per module: its lock comes from uv,
its layer from the build's fetch, install, prune and zip steps. Each test runs the command as a
person would and reads what it printed and wrote.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci.budget.what_if import SpecError, parse_request
from ci.paths import REPO_ROOT, BuildPaths
from tests.conftest import run_cli
from tests.what_if_fixtures import MiniRepo, make_repo

LIMIT = 262_144_000


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> MiniRepo:
    return make_repo(tmp_path_factory.mktemp("what-if"))


def report(repo: MiniRepo) -> dict:
    return json.loads(repo.paths.report("budget-what-if").read_text())


def digests(repo: MiniRepo) -> dict[str, str]:
    """sha256 of the lock, layer.zip, function.zip and every report but the what-if's own."""
    files = [repo.lock, repo.paths.layer_zip, repo.paths.function_zip, *sorted(repo.paths.reports.iterdir())]
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.name != "budget-what-if.json"
    }


def used_now(repo: MiniRepo) -> int:
    """What the current function + layer count, from the zips themselves (as the budget counts)."""
    import zipfile

    total = 0
    for path in (repo.paths.layer_zip, repo.paths.function_zip):
        with zipfile.ZipFile(path) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


def test_a_small_package_fits_shows_its_delta_and_touches_nothing_else(repo: MiniRepo) -> None:
    before = digests(repo)
    run = run_cli(*repo.cli("budget", "--what-if", "smallpkg"))
    assert "Projected size budget: PASS" in run.stdout
    assert "+ smallpkg" in run.stdout and "installed and pruned by the build's rules now" in run.stdout
    data = report(repo)
    assert data["passed"] is True and data["status"] == "pass" and data["limit_bytes"] == LIMIT
    rows = {row["name"]: row for row in data["distributions"]}
    added = rows["smallpkg"]
    assert added["status"] == "added" and added["after_version"] == "1.0" and added["before_bytes"] == 0
    # Pruned by the build's rules: its tests/ folder is gone, its __init__.py and METADATA stay.
    assert 3_000 < added["after_bytes"] < 3_000 + 1_000
    assert rows["basepkg"]["status"] == "unchanged" and rows["basepkg"]["measured"] == "layer.zip"
    assert (
        data["used_bytes"]
        == used_now(repo) + added["after_bytes"]
        == data["current"]["used_bytes"] + data["delta_bytes"]
    )
    assert digests(repo) == before, "the what-if changed the lock, a zip or another report"
    assert "requirements-layer.txt" in data["what_if"]["lock"] and "build/what-if" in data["what_if"]["lock"]

    again = run_cli(*repo.cli("budget", "--what-if", "smallpkg"))
    assert "answered from the cache" in again.stdout
    computed = run.stdout[run.stdout.index("What if:") :].split("\nwrote")[0]
    assert again.stdout.split("\nwrote")[0] == computed, "a cached answer prints what the first one did"
    assert report(repo)["cache"] == "hit" and report(repo)["used_bytes"] == data["used_bytes"]
    assert digests(repo) == before


def test_a_large_package_fails_with_the_excess_and_the_measured_options(repo: MiniRepo) -> None:
    limit = used_now(repo) + 1_500_000  # bigpkg adds about 3 MB
    run = run_cli(*repo.cli("budget", "--what-if", "bigpkg", "--limit-bytes", str(limit)), check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    data = report(repo)
    over = data["used_bytes"] - limit
    assert data["passed"] is False and data["status"] == "fail" and over > 1_000_000
    assert f"exceeds the {limit}-byte limit by {over} bytes" in run.stderr
    options = {option["name"]: option for option in data["options"]}
    # unusedpkg (2 MB, never imported in the build's trace) is what the compact profile and the
    # never-imported option both remove; bigpkg itself is judged by neither (the trace predates it).
    assert options["never-imported"]["saves_bytes"] > 2_000_000 and options["never-imported"]["fits"]
    assert options["compact"]["saves_bytes"] >= options["never-imported"]["saves_bytes"] - 1_000
    assert "container-image" not in options and "together" not in options  # compact already drops unusedpkg
    savings = [option["saves_bytes"] for option in data["options"]]
    assert savings == sorted(savings, reverse=True)
    assert "What would make it fit" in run.stdout and "unusedpkg" in run.stdout

    tiny = used_now(repo) + 100_000  # nothing brings it under: a container image is the route left
    run = run_cli(*repo.cli("budget", "--what-if", "bigpkg", "--limit-bytes", str(tiny)), check=False)
    assert run.returncode == 1
    last = report(repo)["options"][-1]
    assert last["name"] == "container-image" and "10 GB" in last["action"] and "container image" in run.stdout


def test_no_wheel_for_the_target_names_its_tags_and_who_could_load_it(repo: MiniRepo) -> None:
    run = run_cli(*repo.cli("budget", "--what-if", "glibcpkg==2.0"), check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    error = run.stderr
    assert "glibcpkg 2.0 has no wheel for python3.11 x86_64 (glibc 2.26, cp311)" in error
    assert "its Linux wheels are tagged py3-none-manylinux_2_28_x86_64;" in error
    assert "the oldest needs glibc 2.28: python3.11's glibc 2.26 cannot load it" in error
    assert "python3.12 x86_64 (glibc 2.34), python3.13 x86_64 (glibc 2.34) can load it" in error
    assert "glibcpkg 1.0 is the newest version python3.11 x86_64 can load" in error
    fix = "fix: glibcpkg: ask for glibcpkg==1.0 (or a range that allows it) or move the target ([target] runtime = "
    assert fix + '"python3.12", architecture = "x86_64" in pipeline.toml)' in error
    data = report(repo)
    assert data["passed"] is False and "manylinux_2_28" in data["findings"][0]["message"]


def test_a_moved_pin_is_named_with_who_needs_it(repo: MiniRepo) -> None:
    run = run_cli(*repo.cli("budget", "--what-if", "needsnew"))
    data = report(repo)
    assert data["moved_pins"] == [
        {"name": "sharedpkg", "before": "1.0", "after": "2.0", "required_by": ["basepkg", "needsnew"]}
    ]
    rows = {row["name"]: row for row in data["distributions"]}
    assert rows["sharedpkg"]["status"] == "changed" and rows["sharedpkg"]["measured"] in ("measured", "cached")
    assert "sharedpkg 1.0 -> 2.0: the resolver moves this existing pin" in run.stdout


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("smallpkg==", "is not a requirement"),
        ("smallpkg @ https://example.com/smallpkg-1.0-py3-none-any.whl", "is a direct URL"),
        ("-r missing.in", "no such file"),
    ],
)
def test_an_invalid_spec_is_one_line_without_a_traceback(repo: MiniRepo, spec: str, says: str) -> None:
    run = run_cli(*repo.cli("budget", "--what-if", spec), check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: --what-if", "error: -r"))
    assert says in lines[0] and "fix:" in lines[0]


@pytest.mark.parametrize("spec", ["-r extra.in", "-rextra.in", "-r=extra.in", "--requirement=extra.in"])
def test_every_spelling_of_a_requirements_file_in_one_spec_reads_that_file(tmp_path: Path, spec: str) -> None:
    (tmp_path / "extra.in").write_text("smallpkg==1.0\n")
    request = parse_request([spec], [], tmp_path)
    assert request.files == ((tmp_path / "extra.in").resolve(),)
    assert [str(requirement) for requirement in request.requirements] == ["smallpkg==1.0"]


def test_a_requirements_spec_with_two_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not `-r FILE`"):
        parse_request(["-r a.in b.in"], [], tmp_path)


@pytest.mark.parametrize("last_build", ["failed", "never"])
def test_without_a_layer_the_what_if_says_in_one_line_why_and_what_to_run(
    repo: MiniRepo, tmp_path: Path, last_build: str
) -> None:
    """Issue 25.6: a failed build deletes layer.zip; the what-if names that build's error, or what makes a layer."""
    build = tmp_path / "build"
    (build / "reports").mkdir(parents=True)
    if last_build == "failed":  # as `python -m ci build` leaves it: no zips, a failed build.json with the cause
        (build / "model").mkdir()
        (build / "model" / "model.joblib").write_bytes(b"model")
        (build / "reports" / "build.json").write_text(
            json.dumps({"passed": False, "error": "verify: No module named 'urllib3'\nmore", "fix": "add urllib3"})
        )
    argv = repo.cli("budget", "--what-if", "smallpkg")
    argv[argv.index("--build-dir") + 1] = str(build)
    run = run_cli(*argv, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    error, fix = run.stderr.strip().splitlines()
    assert error.startswith("error: ") and "layer.zip is missing" in error
    if last_build == "failed":
        assert "the last `python -m ci build` failed (verify: No module named 'urllib3')" in error
        assert fix == "  fix: add urllib3; then `python -m ci build` and ask again"
    else:
        assert "there is no trained model" in error and "run `make pipeline` once" in fix


def test_requirements_files_are_read_like_requirements_in(repo: MiniRepo, tmp_path: Path) -> None:
    extra = tmp_path / "extra.in"
    extra.write_text("# what we might add\nsmallpkg==1.0\n")
    run_cli(*repo.cli("budget", "--what-if", "-r", str(extra)))
    names = {row["name"] for row in report(repo)["distributions"] if row["status"] == "added"}
    assert names == {"smallpkg"}


@pytest.fixture()
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 recording every request: an index or link server uv must never contact."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", seen
    finally:
        server.shutdown()


OPTION_LINES = {
    "-e": "-e {project}",
    "--editable": "--editable={project}",
    "--index-url": "--index-url {url}",
    "-i": "-i {url}",
    "--extra-index-url": "--extra-index-url {url}",
    "--find-links": "--find-links {url}",
    "-f": "-f {url}",
    "-c": "-c {other}",
    "-r": "-r {other}",
    "--requirement": "--requirement={other}",
    "--trusted-host": "--trusted-host 127.0.0.1",
    "--no-binary": "--no-binary :all:",
}


@pytest.mark.parametrize("option", sorted(OPTION_LINES))
def test_an_option_in_a_requirements_file_is_refused_before_uv_starts(
    option: str, repo: MiniRepo, tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    url, seen = listener
    project = tmp_path / "project"
    project.mkdir()
    ran = tmp_path / "setup-py-ran"
    (project / "setup.py").write_text(f"open({str(ran)!r}, 'w').close()\nfrom setuptools import setup\nsetup()\n")
    other = tmp_path / "other.in"
    other.write_text("smallpkg==1.0\n")
    extra = tmp_path / "extra.in"
    line = OPTION_LINES[option].format(project=project, url=url, other=other)
    extra.write_text(f"# what we might add\n{line}\nsmallpkg==1.0\n")
    written = set(repo.paths.build.rglob("what-if.in"))  # by other tests of the shared repository
    run = run_cli(*repo.cli("budget", "--what-if", "-r", str(extra)), check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"extra.in:2: {option!r} is an option, not a requirement" in lines[0], lines
    assert "fix:" in lines[0]
    assert seen == [] and not ran.exists(), "uv never started"
    assert set(repo.paths.build.rglob("what-if.in")) == written, "nothing written for the resolver"


def test_the_help_names_the_option() -> None:
    run = run_cli("-m", "ci", "budget", "--help")
    assert "--what-if" in run.stdout and "--fresh" in run.stdout


def test_on_the_real_layer_a_pypi_package_fits_and_lightgbm_4_5_is_explained(built_layer: BuildPaths) -> None:
    """Slow (builds this repository's layer): real packages from PyPI, small wheels only."""
    paths = built_layer
    cli = ("-m", "ci", "--build-dir", str(paths.build), "--cache-dir", str(paths.cache), "budget")
    protected = [REPO_ROOT / "requirements-layer.txt", paths.layer_zip, paths.function_zip]
    protected += [path for path in sorted(paths.reports.iterdir()) if path.name != "budget-what-if.json"]
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in protected}

    run_cli(*cli, "--what-if", "tomli")
    data = json.loads(paths.report("budget-what-if").read_text())
    rows = {row["name"]: row for row in data["distributions"]}
    assert data["status"] in ("pass", "warn") and rows["tomli"]["status"] == "added"
    assert 0 < data["delta_bytes"] == rows["tomli"]["after_bytes"] < 2_000_000
    assert all(row["status"] in ("added", "unchanged") for row in data["distributions"])

    run = run_cli(*cli, "--what-if", "lightgbm==4.5.0", check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "py3-none-manylinux_2_28_x86_64" in run.stderr and "python3.12 x86_64 (glibc 2.34)" in run.stderr
    assert "is the newest version python3.11 x86_64 can load" in run.stderr
    assert {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in protected} == before


def test_the_measurement_cache_key_covers_files_that_exist() -> None:
    """A module folded away drops out of the key silently (sources_digest hashes it as missing): name real files."""
    from ci.budget.what_if import MEASURING_CODE

    assert all(path.is_file() for path in MEASURING_CODE), [str(path) for path in MEASURING_CODE]
