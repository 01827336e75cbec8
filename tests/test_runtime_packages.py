"""ci/policy/runtime-<runtime>.txt: one per runtime in lambda_runtimes.json, written only by
`python -m ci lock --runtime-packages`, pinning exactly the `provided` list (plus its dependencies)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci.config import load_policy
from ci.lock.lockfile import read_lock
from ci.lock.resolve import POLICY_DIR, generate, header, runtime_file
from ci.paths import REPO_ROOT
from tests.config_fixtures import RUNTIMES

UV_CACHE = REPO_ROOT / "build" / "cache" / "uv"


def test_one_file_per_runtime_and_no_other() -> None:
    assert {path.name for path in POLICY_DIR.glob("runtime-*.txt")} == {f"runtime-{name}.txt" for name in RUNTIMES}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_committed_file_is_what_the_generator_writes_for_the_policy(runtime: str) -> None:
    """Offline: the generator's header, the JSON's provided pins exactly, every pin exact and hashed,
    and nothing but the provided packages and what they depend on."""
    policy = load_policy()[runtime]
    path = runtime_file(runtime)
    assert path.read_text().startswith(header(policy)), f"{path.name} was not written by the generator"
    lock = read_lock(path)
    provided = {canonicalize_name(Requirement(pin).name): Requirement(pin) for pin in policy.provided}
    for name, requirement in provided.items():
        pin = lock.pins.get(name)
        assert pin is not None, f"{path.name} lacks {requirement} (lambda_runtimes.json provides it)"
        assert pin.version is not None and requirement.specifier.contains(pin.version), (pin.text, str(requirement))
        assert "-r runtime.in" in pin.via
    for name, pin in lock.pins.items():
        assert pin.version is not None and pin.hashes, f"{path.name}:{pin.line}: {pin.text} is not exact and hashed"
        if name not in provided:
            assert pin.via and set(pin.via) <= set(lock.pins), f"{name} is in {path.name} but nothing provided needs it"


@pytest.mark.slow  # uv resolves against PyPI
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_generator_reproduces_the_committed_file(runtime: str, tmp_path: Path) -> None:
    """For real: uv resolves the provided list for the runtime's Python and platform; same bytes."""
    output = tmp_path / runtime_file(runtime).name
    shutil.copyfile(runtime_file(runtime), output)  # the committed pins are preferred, as the command does
    changed = generate(load_policy()[runtime], "https://pypi.org/simple", output, uv_cache=UV_CACHE)
    assert not changed, f"`python -m ci lock --runtime-packages` would rewrite {runtime_file(runtime).name}"


@pytest.mark.slow
def test_a_changed_provided_list_changes_the_file(tmp_path: Path) -> None:
    """Control for the two tests above: the file follows the JSON."""
    policy = load_policy()[RUNTIMES[0]]
    older = [pin.replace("urllib3==1.26.20", "urllib3==1.26.19") for pin in policy.provided]
    edited = type(policy)(**{**policy.__dict__, "provided": older})
    output = tmp_path / "runtime.txt"
    assert generate(edited, "https://pypi.org/simple", output, uv_cache=UV_CACHE)
    assert read_lock(output).pins["urllib3"].version == "1.26.19"
