"""The typed configuration: every mistake refused at load, in one line naming the file, section and key.

The subprocess tests run `python -m ci --config FILE <command>` as a user would: for every
command, a missing key, a wrong type and an unknown key stop it before it does anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from config_fixtures import edited_config

from ci.config import load_config
from ci.config_sections import LAMBDA_UNZIPPED_LIMIT, PRUNE_RULES, ExtraLayerArn
from ci.errors import ConfigError
from ci.paths import REPO_ROOT
from tests.conftest import run_cli

COMMANDS = ("lock", "build", "abi", "budget", "pins", "smoke", "deploy", "rollback", "bootstrap", "bench")
MISTAKES = {
    "missing key": (("deploy", "region", None), "[deploy] region is missing"),
    "wrong type": (("function", "memory_mb", 'memory_mb = "lots"'), '[function] memory_mb = "lots" is not allowed'),
    "unknown key": (("smoke", "tolerence", "tolerence = 0.02"), "[smoke] has an unknown key tolerence"),
}


def refusal(tmp_path: Path, section: str, key: str, line: str | None) -> str:
    """The one-line problem load_config raises for pipeline.toml with that one line changed."""
    file = edited_config(tmp_path, section, key, line)
    with pytest.raises(ConfigError) as caught:
        load_config(file=file)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{file}: ")
    return message


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_bad_config_in_one_line_before_doing_anything(
    tmp_path: Path, command: str, mistake: str
) -> None:
    (section, key, line), expected = MISTAKES[mistake]
    config = edited_config(tmp_path, section, key, line)
    build = tmp_path / "build"
    result = run_cli("-m", "ci", "--build-dir", str(build), "--config", str(config), command, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {config}: {expected}")  # the --config file, not pipeline.toml
    assert "; fix: " in lines[0]
    assert not build.exists()  # no report, no download, nothing built or uploaded


def test_a_word_for_a_number_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "function", "memory_mb", 'memory_mb = "lots"')
    assert "an integer from 128 to 10,240 MB" in message and "fix: write memory_mb = 512 under [function]" in message
    message = refusal(tmp_path, "training", "max_history_error", 'max_history_error = "x"')
    assert '[training] max_history_error = "x" is not allowed: it must be a number >= 0 and <= 1' in message


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    assert "[function] timeout_s = true is not allowed" in refusal(
        tmp_path, "function", "timeout_s", "timeout_s = true"
    )
    assert "[build] sourceless = 1 is not allowed" in refusal(tmp_path, "build", "sourceless", "sourceless = 1")


def test_a_lone_string_is_not_read_as_a_list_of_letters(tmp_path: Path) -> None:
    message = refusal(tmp_path, "build", "prune", 'prune = "tests"')
    assert '[build] prune = "tests" is not allowed: it must be a list of names from tests, docs' in message
    assert 'fix: write prune = ["tests"] under [build]' in message


def test_an_unknown_rule_is_named_with_the_closest_one(tmp_path: Path) -> None:
    message = refusal(tmp_path, "build", "prune", 'prune = ["tests", "docz"]')
    assert '[build] prune names "docz" (did you mean docs?)' in message and "strip" in message


def test_an_unknown_key_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    message = refusal(tmp_path, "function", "memory_mb", "memroy_mb = 512")
    assert "[function] has an unknown key memroy_mb (did you mean memory_mb?)" in message
    assert message.endswith("fix: rename it to memory_mb")
    message = refusal(tmp_path, "deploy", "regoin", 'regoin = "eu-west-1"')
    assert "unknown key regoin (did you mean region?)" in message


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text((REPO_ROOT / "pipeline.toml").read_text() + "\n[buget]\nlimit_bytes = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section buget \(did you mean budget\?\)"):
        load_config(file=file)


def test_a_missing_key_is_named_not_a_key_error(tmp_path: Path) -> None:
    message = refusal(tmp_path, "function", "memory_mb", None)
    assert "[function] memory_mb is missing" in message and "fix: add memory_mb = 512 under [function]" in message


def test_the_unzipped_limit_cannot_exceed_lambdas(tmp_path: Path) -> None:
    message = refusal(tmp_path, "budget", "limit_bytes", "limit_bytes = 400000000")
    assert "[budget] limit_bytes = 400000000 is not allowed: it must be an integer from 1 to 262,144,000" in message
    smaller = edited_config(tmp_path, "budget", "limit_bytes", "limit_bytes = 250000000")
    assert load_config(file=smaller).budget.limit_bytes == 250_000_000
    assert load_config().budget.limit_bytes == LAMBDA_UNZIPPED_LIMIT


def test_extra_layer_entries_are_checked_at_load(tmp_path: Path) -> None:
    line = 'extra_layer_arns = [{ arn = "arn:aws:lambda:us-east-1:1:layer:x:1", unzipped_bytez = 5 }]'
    message = refusal(tmp_path, "budget", "extra_layer_arns", line)
    assert "[budget.extra_layer_arns[0]] has an unknown key unzipped_bytez (did you mean unzipped_bytes?)" in message
    line = 'extra_layer_arns = [{ arn = "arn:aws:lambda:us-east-1:1:layer:x:1", unzipped_bytes = 5 }]'
    config = load_config(file=edited_config(tmp_path, "budget", "extra_layer_arns", line))
    assert config.budget.extra_layer_arns == (ExtraLayerArn("arn:aws:lambda:us-east-1:1:layer:x:1", 5),)


def test_optional_keys_take_their_defaults_and_paths_resolve_against_the_repository(tmp_path: Path) -> None:
    file = tmp_path / "bare.toml"
    text = (REPO_ROOT / "pipeline.toml").read_text()
    text = text.split("[build]")[0] + "[build]\n[budget]\nlimit_bytes = 1000\n[smoke]" + text.split("[smoke]")[1]
    file.write_text(text)
    config = load_config(file=file)
    assert config.build.prune == PRUNE_RULES and config.build.bytecode == "runtime" and config.build.keep == ()
    assert not config.build.sourceless and not config.build.prune_unimported
    assert config.budget.warn_fraction == 0.9 and config.budget.extra_layer_zips == ()
    assert config.deploy.github_repository == "" and config.deploy.check_warm_invocations == 0
    assert config.lock.layer_lock == REPO_ROOT / "requirements-layer.txt"  # the repository's, not tmp_path's
    assert config.smoke.events == REPO_ROOT / "tests" / "events"
    assert config.file == file


OUT_OF_DOMAIN = {
    "plain http index": ("lock", "index_url", 'index_url = "http://mirror.example/simple"', "an https:// URL"),
    "file index": ("lock", "index_url", 'index_url = "file:///srv/simple"', "an https:// URL"),
    "lock outside": ("lock", "layer_lock", 'layer_lock = "/etc/passwd"', "a path inside the repository"),
    "lock above": ("lock", "requirements_in", 'requirements_in = "../../x.in"', "a path inside the repository"),
    "events outside": ("smoke", "events", 'events = "/etc"', "a path inside the repository"),
    "extra zip above": ("budget", "extra_layer_zips", 'extra_layer_zips = ["../x.zip"]', "inside the repository"),
    "keep above": ("build", "keep", 'keep = ["../../etc/*"]', "without '..' segments"),
    "keep absolute": ("build", "keep", 'keep = ["/etc/*"]', "a relative path glob"),
    "prefix above": ("deploy", "key_prefix", 'key_prefix = "../x"', "plain segments"),
    "prefix dot": ("deploy", "key_prefix", 'key_prefix = "a/./b"', "plain segments"),
    "prefix empty segment": ("deploy", "key_prefix", 'key_prefix = "a//b"', "plain segments"),
    "prefix trailing slash": ("deploy", "key_prefix", 'key_prefix = "a/"', "plain segments"),
    "prefix space": ("deploy", "key_prefix", 'key_prefix = "a b"', "plain segments"),
}


@pytest.mark.parametrize("case", OUT_OF_DOMAIN)
def test_a_value_outside_its_domain_is_refused_naming_its_key(tmp_path: Path, case: str) -> None:
    section, key, line, allowed = OUT_OF_DOMAIN[case]
    message = refusal(tmp_path, section, key, line)
    assert f"[{section}] {key}" in message and allowed in message and "fix: write " in message


def test_an_insecure_index_needs_its_named_opt_in(tmp_path: Path) -> None:
    file = edited_config(tmp_path, "lock", "index_url", 'index_url = "http://127.0.0.1:8080/simple"')
    file.write_text(file.read_text().replace("[lock]\n", "[lock]\nallow_insecure_index = true\n"))
    config = load_config(file=file)
    assert config.lock.index_url == "http://127.0.0.1:8080/simple" and config.lock.allow_insecure_index
    assert not load_config().lock.allow_insecure_index


def test_paths_beside_the_config_file_and_plain_prefixes_are_accepted(tmp_path: Path) -> None:
    file = edited_config(tmp_path, "deploy", "key_prefix", 'key_prefix = "team-a/forgetting_curve.v2"')
    file.write_text(
        file.read_text().replace('layer_lock = "requirements-layer.txt"', f'layer_lock = "{tmp_path}/l.txt"')
    )
    config = load_config(file=file)
    assert config.deploy.key_prefix == "team-a/forgetting_curve.v2" and config.lock.layer_lock == tmp_path / "l.txt"


def test_a_whole_number_of_seconds_is_a_float_and_a_fraction_of_a_megabyte_is_refused(tmp_path: Path) -> None:
    """TOML's 7 and 7.0 are different types: a duration takes either; a count of megabytes only a whole number."""
    seconds = load_config(file=edited_config(tmp_path, "smoke", "init_limit_s", "init_limit_s = 7"))
    assert type(seconds.smoke.init_limit_s) is float and seconds.smoke.init_limit_s == 7.0
    file = edited_config(tmp_path, "function", "memory_mb", "memory_mb = 512.5")
    with pytest.raises(ConfigError, match=r"memory_mb = 512.5 is not allowed: it must be an integer .*memory_mb = 512"):
        load_config(file=file)


def test_values_for_the_workflows_come_from_the_typed_config() -> None:
    config = load_config()
    assert config.value("deploy", "region") == config.deploy.region
    assert config.value("lock", "layer_lock") == "requirements-layer.txt"
    assert config.value("target", "runtime") == config.target.runtime.name
    assert config.value("deploy", "nowhere") is None and config.value("raw", "x") is None


def test_training_reads_its_section_through_the_same_checks(tmp_path: Path) -> None:
    from training.cli import main as train
    from training.settings import load_settings

    assert load_settings().seed == load_config().training.seed
    file = edited_config(tmp_path, "training", "learners", "learnrs = 400")
    with pytest.raises(ConfigError, match=r"\[training\] has an unknown key learnrs \(did you mean learners\?\)"):
        load_settings(file)
    assert train(["--config", str(file), "--out-dir", str(tmp_path / "model")]) == 2  # configuration: exit 2
    file = edited_config(tmp_path, "training", "test_fraction", "test_fraction = 1")
    with pytest.raises(ConfigError, match=rf"{file}: \[training\] test_fraction = 1 is not allowed"):
        load_settings(file)


def test_training_settings_stay_light() -> None:
    code = "import sys, training.settings; print(sorted(m for m in ('numpy', 'sklearn', 'boto3') if m in sys.modules))"
    assert run_cli("-c", code).stdout.strip() == "[]"


def test_sections_are_pydantic_dataclasses_checked_on_every_construction() -> None:
    import dataclasses

    import pydantic

    function = load_config().function
    with pytest.raises(pydantic.ValidationError):
        dataclasses.replace(function, memory_mb=5)
    assert dataclasses.replace(function, memory_mb=1024).memory_mb == 1024


def test_a_bare_python_reads_target_and_refuses_a_bad_architecture_in_one_line(tmp_path: Path) -> None:
    """verify's target job asks `python3 -m ci.github config runner=target.runner` before any install."""
    import subprocess
    import sys

    edited_config(tmp_path, "target", "architecture", 'architecture = "arm"', name="pipeline.toml")
    bare = getattr(sys, "_base_executable", sys.executable)
    code = "import sys, pathlib, ci.config as c; print(c.config_value(*sys.argv[1:3], pathlib.Path(sys.argv[3])))"
    ran = subprocess.run(
        [bare, "-S", "-c", code, "target", "runner", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert ran.returncode == 1 and "ConfigError" in ran.stderr, ran.stderr
    assert '[target] architecture = "arm" is not allowed: it must be one of "x86_64", "arm64"' in ran.stderr
    assert "pydantic" not in ran.stderr
    ran = subprocess.run(
        [bare, "-S", "-c", code, "target", "runner", str(REPO_ROOT)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert ran.returncode == 0 and ran.stdout.strip() == load_config().target.runner, ran.stderr


def test_a_seed_scikit_learn_cannot_take_is_refused_before_training(tmp_path: Path) -> None:
    message = refusal(tmp_path, "training", "seed", "seed = 99999999999999999999999")
    assert "[training] seed = 99999999999999999999999 is not allowed" in message
    assert "an integer from 0 to 4,294,967,295" in message


def test_a_path_refusal_names_the_repository_once_when_the_config_file_is_in_it(tmp_path: Path) -> None:
    file = edited_config(tmp_path, "smoke", "events", 'events = "/etc"', name="pipeline.toml")
    with pytest.raises(ConfigError) as caught:
        load_config(root=tmp_path, file=file)
    assert f"a path inside the repository ({tmp_path.resolve()}), and /etc is not" in str(caught.value)


def test_relock_refuses_a_lock_path_outside_the_repository_in_one_line(tmp_path: Path) -> None:
    """relock-pr reads [lock] with the standard library (its runner has no pydantic): the same refusal, no traceback."""
    from ci.config import lock_files

    edited_config(tmp_path, "lock", "layer_lock", 'layer_lock = "../outside.txt"', name="pipeline.toml")
    refused = r'\[lock\] layer_lock = "\.\./outside\.txt" is not allowed: it must be a path inside'
    with pytest.raises(ConfigError, match=refused):
        lock_files(tmp_path)
    assert REPO_ROOT / "requirements-layer.txt" in lock_files(REPO_ROOT)
