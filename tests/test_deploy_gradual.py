"""Gradual deploys ([deploy] strategy) on moto in server mode: the alias is seen split at the step's
weight, an alarm forced to ALARM from a second client puts all traffic back on the old version and
fails the deploy naming it, and a deploy process killed mid-shift is resolved by the next command.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from config_fixtures import edited_config

from ci.config import Config, load_config
from ci.config_sections import PRESETS
from ci.deploy import shift as shifts
from ci.deploy.aws import Aws
from ci.deploy.deployer import DeployFailedError, deploy, rollback
from ci.deploy.target import calm_local_alarms, read_outputs
from ci.errors import ConfigError
from ci.paths import REPO_ROOT

pytest.register_assert_rewrite("tests.moto_fixtures")  # its fixtures are a plugin (below); rewrite before import
from tests.moto_fixtures import BytesCheck, FakeBuild, deploy_report  # noqa: E402

pytest_plugins = ["tests.moto_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

ERRORS_ALARM = "forgetting-curve-live-errors"


def gradual(config: Config, strategy: str = "canary", interval_s: int = 30, **extra: Any) -> Config:
    settings = dataclasses.replace(config.deploy, strategy=strategy, step_interval_s=interval_s, **extra)
    return dataclasses.replace(config, deploy=settings)


def alias(aws: Aws, config: Config) -> tuple[str, dict[str, float]]:
    got = aws.lambda_.get_alias(FunctionName=config.function.name, Name=config.function.alias)
    return str(got["FunctionVersion"]), dict((got.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def wait_for_split(
    aws: Aws, config: Config, timeout_s: float = 60, process: subprocess.Popen[bytes] | None = None
) -> tuple[str, dict[str, float]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, "the deploy process ended before the alias split"
        seen = alias(aws, config)
        if seen[1]:
            return seen
        time.sleep(0.05)
    raise AssertionError("the alias never split")


@pytest.fixture()
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shifts, "POLL_S", 0.2)


def first_then_second(aws: Aws, config: Config, build: FakeBuild) -> BytesCheck:
    check = BytesCheck(build)
    deploy(config, build.paths, aws, verifier=check)  # version 1, all at once (no alias yet)
    build.make(layer="v2", function="0.7", model="m2")
    return check


def in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = target()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_bootstrap_creates_the_alarms_the_shift_watches(aws: Aws, config: Config):
    names = read_outputs(aws, config).alarms
    assert set(names) == {f"forgetting-curve-live-{kind}" for kind in ("errors", "throttles", "duration")}
    described = aws.cloudwatch.describe_alarms(AlarmNames=list(names))["MetricAlarms"]
    duration = next(a for a in described if a["MetricName"] == "Duration")
    assert duration["Threshold"] == config.function.timeout_s * 800  # 80% of the timeout, in ms
    assert all({"Name": "Resource", "Value": "forgetting-curve:live"} in a["Dimensions"] for a in described)


def test_a_canary_is_seen_mid_shift_at_its_weight_then_completes(
    aws: Aws, config: Config, build: FakeBuild, fast_polls: None
):
    check = first_then_second(aws, config, build)
    canary = gradual(config, interval_s=2)
    thread, result = in_thread(lambda: deploy(canary, build.paths, aws, verifier=check))

    assert wait_for_split(aws, config) == ("1", {"2": 0.1})
    thread.join(60)
    assert "error" not in result, result.get("error")
    assert alias(aws, config) == ("2", {})
    report = deploy_report(build.paths)["shift"]
    assert report["outcome"] == "completed" and [s["weight_percent"] for s in report["steps"]] == [10, 100]
    assert report["steps"][0]["alarm_reads"] >= 2 and report["steps"][0]["alarms"][ERRORS_ALARM] != "ALARM"
    assert aws.lambda_.get_alias(FunctionName="forgetting-curve", Name="live")["Description"].endswith(": 1 2")


def test_a_shift_longer_than_one_steps_deadline_completes(aws: Aws, config: Config, build: FakeBuild, fast_polls: None):
    """Each move and alarm read has its own step deadline: a 2 s bound per step, a 4 s shift still completes."""
    check = first_then_second(aws, config, build)
    aws.deadlines.step_s = 2.0
    deploy(gradual(config, interval_s=4), build.paths, aws, verifier=check)
    assert alias(aws, config) == ("2", {})
    assert deploy_report(build.paths)["shift"]["outcome"] == "completed"


def test_an_alarm_mid_shift_puts_all_traffic_back_and_a_clean_rerun_completes(
    aws: Aws, config: Config, build: FakeBuild, fast_polls: None, moto: str
):
    check = first_then_second(aws, config, build)
    linear = gradual(config, "linear", interval_s=60, step_percent=25)
    thread, result = in_thread(lambda: deploy(linear, build.paths, aws, verifier=check))
    assert wait_for_split(aws, config) == ("1", {"2": 0.25})

    other = boto3.client("cloudwatch", endpoint_url=moto, region_name="us-east-1",
                         aws_access_key_id="other", aws_secret_access_key="other")  # fmt: skip
    forced = time.monotonic()
    other.set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="ALARM", StateReason="3 errors in 1 minute (forced)")
    thread.join(60)

    assert time.monotonic() - forced < 5  # within one polling interval (plus one request)
    error = result.get("error")
    assert isinstance(error, DeployFailedError), result
    assert ERRORS_ALARM in str(error) and "3 errors in 1 minute (forced)" in str(error)
    assert "all traffic is back on version 1" in str(error)
    assert alias(aws, config) == ("1", {})
    steps = deploy_report(build.paths)["shift"]["steps"]
    assert [s["weight_percent"] for s in steps] == [25, 0] and "undo" in steps[-1]

    other.set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="OK", StateReason="recovered")
    rerun = deploy(gradual(config, interval_s=0), build.paths, aws, verifier=check)
    assert rerun.version == "2" and alias(aws, config) == ("2", {})


def test_an_alarm_already_firing_stops_the_shift_before_any_traffic_moves(aws: Aws, config: Config, build: FakeBuild):
    check = first_then_second(aws, config, build)
    aws.cloudwatch.set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="ALARM", StateReason="still broken")
    with pytest.raises(DeployFailedError, match="before the shift started"):
        deploy(gradual(config, interval_s=0), build.paths, aws, verifier=check)
    assert alias(aws, config) == ("1", {})


def test_a_team_alarm_that_does_not_exist_fails_before_anything_is_uploaded(aws: Aws, config: Config, build: FakeBuild):
    check = first_then_second(aws, config, build)
    with pytest.raises(DeployFailedError) as failure:
        deploy(gradual(config, alarms=("team-5xx",)), build.paths, aws, verifier=check)
    assert failure.value.step == "alarms" and "team-5xx" in str(failure.value)


def test_a_team_alarm_is_watched_too(aws: Aws, config: Config, build: FakeBuild, fast_polls: None):
    check = first_then_second(aws, config, build)
    aws.cloudwatch.put_metric_alarm(
        AlarmName="team-5xx", MetricName="5xx", Namespace="Team", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    thread, result = in_thread(lambda: deploy(gradual(config, alarms=("team-5xx",)), build.paths, aws, verifier=check))
    wait_for_split(aws, config)
    aws.cloudwatch.set_alarm_state(AlarmName="team-5xx", StateValue="ALARM", StateReason="gateway 5xx")
    thread.join(60)
    assert "team-5xx" in str(result.get("error")) and alias(aws, config) == ("1", {})


KILLABLE = """
import sys
sys.path.insert(0, {root!r})
from dataclasses import replace
from pathlib import Path
from ci.config import load_config
from ci.deploy.aws import connect
from ci.deploy.deployer import deploy
from ci.paths import BuildPaths
from tests.moto_fixtures import BytesCheck, FakeBuild

config = load_config()
config = replace(config, deploy=replace(config.deploy, strategy="canary", step_interval_s=600))
build = FakeBuild(BuildPaths(build=Path({build!r}), cache=Path({cache!r})))
aws = connect(config, endpoint_url={url!r}, static_credentials=("test", "test"))
deploy(config, build.paths, aws, verifier=BytesCheck(build))
"""


def killed_mid_shift(moto: str, build: FakeBuild, aws: Aws, config: Config) -> None:
    """A separate deploy process, SIGKILLed (nothing runs after it) while the alias is split."""
    script = KILLABLE.format(root=str(REPO_ROOT), build=str(build.paths.build), cache=str(build.paths.cache), url=moto)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        assert wait_for_split(aws, config, 120, process) == ("1", {"2": 0.1})
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def test_a_deploy_killed_mid_shift_is_resolved_by_the_next_status(
    aws: Aws, config: Config, build: FakeBuild, moto: str
):
    first_then_second(aws, config, build)
    killed_mid_shift(moto, build, aws, config)
    assert alias(aws, config) == ("1", {"2": 0.1})  # the dead run left it split

    environ = {**os.environ, "AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    status = subprocess.run(
        [sys.executable, "-m", "ci", "--build-dir", str(build.paths.build), "status", "--target", "aws"],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert status.returncode == 0, status.stderr
    assert "left mid-shift" in status.stdout and "all traffic is back on version 1" in status.stdout
    assert "is no longer running" in status.stdout  # the dead process's lock was taken over, not waited out
    assert alias(aws, config) == ("1", {})


def test_a_deploy_killed_mid_shift_is_resolved_by_the_next_deploy_or_rollback(
    ci_log: pytest.LogCaptureFixture, aws: Aws, config: Config, build: FakeBuild, moto: str
):
    check = first_then_second(aws, config, build)
    killed_mid_shift(moto, build, aws, config)
    outcome = rollback(config, build.paths, aws, verifier=check)
    assert (outcome["from_version"], outcome["to_version"]) == ("2", "1") and alias(aws, config) == ("1", {})
    assert any("left mid-shift" in line for line in ci_log.messages)

    killed_mid_shift(moto, build, aws, config)
    ci_log.clear()
    done = deploy(config, build.paths, aws, verifier=check)  # all-at-once rerun
    assert any("left mid-shift" in line for line in ci_log.messages)
    assert done.version == "2" and alias(aws, config) == ("2", {})
    history = aws.lambda_.get_alias(FunctionName="forgetting-curve", Name="live")["Description"]
    assert history.endswith(": 1 2")


def test_rollback_after_a_completed_shift_goes_back_one_version(aws: Aws, config: Config, build: FakeBuild):
    check = first_then_second(aws, config, build)
    deploy(gradual(config, "linear", interval_s=0, step_percent=50), build.paths, aws, verifier=check)
    assert alias(aws, config) == ("2", {})
    outcome = rollback(config, build.paths, aws, verifier=check)
    assert outcome["to_version"] == "1" and alias(aws, config) == ("1", {})


def deploy_config(tmp_path: Path, lines: str) -> Path:
    """pipeline.toml without its own strategy keys, `lines` added under [deploy]."""
    path = edited_config(tmp_path, "deploy", "strategy", lines)
    kept, section = [], ""
    for line in path.read_text().splitlines():
        section = line if line.startswith("[") else section
        own = section == "[deploy]" and line.split("=")[0].strip() in {"strategy", "step_percent", "step_interval_s"}
        if not own or line in lines.splitlines():
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('strategy = "Canary10Percent5Minutes"', ("canary", 10, 300)),
        ('strategy = "Linear10PercentEvery1Minute"', ("linear", 10, 60)),
        ('strategy = "AllAtOnce"', ("all-at-once", 100, 0)),
        ('strategy = "linear"\nstep_percent = 20', ("linear", 20, None)),
    ],
)
def test_strategies_and_sam_presets_are_read(tmp_path: Path, line: str, expected: tuple[str, int, int | None]):
    deploy_settings = load_config(file=deploy_config(tmp_path, line)).deploy
    interval = deploy_settings.step_interval_s if expected[2] is not None else None  # else the default
    assert (deploy_settings.strategy, deploy_settings.step_percent, interval) == expected
    assert set(PRESETS) >= {"Canary10Percent5Minutes", "Linear10PercentEvery1Minute", "AllAtOnce"}


@pytest.mark.parametrize(
    ("key", "line", "expected"),
    [
        ("strategy", 'strategy = "blue-green"', '[deploy] strategy = "blue-green" is not allowed'),
        ("step_percent", "step_percent = 100", "[deploy] step_percent = 100 is not allowed"),
        ("step_interval_s", "step_interval_s = -1", "[deploy] step_interval_s = -1 is not allowed"),
        ("alarms", 'alarms = "team-5xx"', '[deploy] alarms = "team-5xx" is not allowed'),
        ("strategy", 'strategy = "Canary10Percent5Minutes"\nstep_percent = 5', "a preset that already fixes it"),
        ("strategy", 'strategy = "Linear10PercentEvery10Minutes"', "shifts for 90 minutes, longer than the 40"),
    ],
)
def test_bad_strategy_settings_get_one_line_errors(tmp_path: Path, key: str, line: str, expected: str):
    with pytest.raises(ConfigError) as caught:
        load_config(file=deploy_config(tmp_path, line))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_shift_steps(config: Config):
    assert shifts.step_weights("canary", 10) == (10,)
    assert shifts.step_weights("linear", 10) == (10, 20, 30, 40, 50, 60, 70, 80, 90)
    assert shifts.step_weights("linear", 40) == (40, 80)
    assert shifts.step_weights("all-at-once", 10) == ()


def test_the_job_summary_shows_each_step(
    aws: Aws, config: Config, build: FakeBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from ci.cmd_deploy import shift_summary

    check = first_then_second(aws, config, build)
    started = time.time() - 1
    deploy(gradual(config, "linear", interval_s=0, step_percent=50), build.paths, aws, verifier=check)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    shift_summary(build.paths, started)

    text = summary.read_text()
    assert "### deploy: linear shift completed (version 2)" in text
    assert [line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| 20")] == ["50%", "100%"]
    assert f"{ERRORS_ALARM}: OK" in text


def test_an_alias_moved_by_hand_mid_shift_is_not_overwritten(
    aws: Aws, config: Config, build: FakeBuild, fast_polls: None
):
    check = first_then_second(aws, config, build)
    thread, result = in_thread(lambda: deploy(gradual(config, interval_s=3), build.paths, aws, verifier=check))
    wait_for_split(aws, config)
    aws.lambda_.update_alias(
        FunctionName="forgetting-curve", Name="live", FunctionVersion="1", Description="by hand",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )  # fmt: skip
    thread.join(60)
    assert "changed while this run held it" in str(result.get("error")) and alias(aws, config) == ("1", {})


def test_the_local_emulator_starts_each_command_with_its_alarms_ok(aws: Aws, config: Config):
    """moto never evaluates alarms: an ALARM forced in one command must not refuse every later deploy."""
    aws.cloudwatch.set_alarm_state(AlarmName=ERRORS_ALARM, StateValue="ALARM", StateReason="forced yesterday")
    calm_local_alarms(aws, config)
    (alarm,) = aws.cloudwatch.describe_alarms(AlarmNames=[ERRORS_ALARM])["MetricAlarms"]
    assert alarm["StateValue"] == "OK"
