"""Where a command deploys: the caller's AWS (or emulator), else the local moto emulator, whose state
persists in build/local-aws/ (inside GitHub Actions only if asked for: --target embedded); and the bootstrap
stack (infra/template.yaml) whose outputs name the bucket and roles every deploy uses."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import shutil
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci.config import Config
from ci.deploy.aws import Aws, connect, credentials_configured, endpoint_configured
from ci.errors import PipelineError
from ci.paths import BuildPaths

if TYPE_CHECKING:
    import yaml

logger = logging.getLogger(__name__)

TEMPLATE = Path("infra") / "template.yaml"
EMBEDDED_REPOSITORY = "local/embedded"  # the embedded moto has no GitHub; any owner/name will do


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=("auto", "embedded", "aws"),
        default="auto",
        help="auto (default): boto3's configuration if any, else the local AWS emulator (state in "
        "build/local-aws/); embedded: always the local emulator; aws: always boto3's configuration",
    )


def wants_embedded(mode: str, environ: Mapping[str, str] = os.environ) -> bool:
    if mode != "auto":
        return mode == "embedded"
    if endpoint_configured(environ) or credentials_configured(environ):
        return False
    if environ.get("GITHUB_ACTIONS") == "true":
        raise PipelineError(
            "no AWS credentials in this GitHub Actions job: refusing to fall back to the embedded emulator, "
            "which would report a deploy that never reached AWS",
            "give the job `permissions: id-token: write` and an aws-actions/configure-aws-credentials step with the "
            "DeployRoleArn output of the bootstrap stack; `--target embedded` deploys to a throwaway moto on purpose",
        )
    return True


@contextmanager
def deployment_target(
    config: Config, paths: BuildPaths, mode: str = "auto", bootstrapped: bool = True
) -> Iterator[Aws]:
    """Yield connected clients; for the embedded default, the local emulator (its stack bootstrapped if asked)."""
    if not wants_embedded(mode):
        yield connect(config)
        return
    state = paths.build / LOCAL_STATE
    with local_aws(state) as url:
        logger.info(
            f"no AWS endpoint or credentials configured: using the local AWS emulator at {url} (state: {state})"
        )
        aws = connect(config, endpoint_url=url, static_credentials=("embedded", "embedded"), embedded=True)
        if bootstrapped:
            if find_stack(aws, config.deploy.stack_name) is None:
                bootstrap(aws, config, stack_parameters(config, EMBEDDED_REPOSITORY, None))
                logger.info(
                    f"bootstrapped stack {config.deploy.stack_name} from infra/template.yaml on the local emulator"
                )
            calm_local_alarms(aws, config)
        yield aws
        logger.info(f"local AWS emulator stopped; its state stays in {state} (see `python -m ci status`)")


def calm_local_alarms(aws: Aws, config: Config) -> None:
    """Alarms start each local command OK: moto never evaluates one, so a forced ALARM would stay forever."""
    from botocore.exceptions import ClientError

    names = tuple(dict.fromkeys((*read_outputs(aws, config).alarms, *config.deploy.alarms)))
    existing = aws.cloudwatch.describe_alarms(AlarmNames=list(names[:100])).get("MetricAlarms", []) if names else []
    for alarm in existing:
        if alarm.get("StateValue") != "OK":
            with suppress(ClientError):
                reason = "local emulator: alarms start each command OK"
                aws.cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason=reason)


LOCAL_STATE = "local-aws"  # under the build directory
RECORDING = "requests.jsonl"


def configure_moto(endpoint_url: str) -> None:
    """Tell a moto server (ours or someone else's) not to need Docker for Lambda."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def quiet_moto() -> None:
    """moto logs every request and warns about template resources it does not emulate; keep output readable."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"moto\..*")


@contextmanager
def _exclusive(state: Path) -> Iterator[None]:
    """One command at a time on the local account, as if it were one: a second waits, saying so."""
    with (state / "lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"waiting for another command using the local AWS emulator ({state})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the kernel releases the lock when the file closes, even if this process is killed


@contextmanager
def local_aws(state: Path) -> Iterator[str]:
    """moto on 127.0.0.1 holding everything earlier commands did to it (replayed from `state`), and this one's too."""
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    state.mkdir(parents=True, exist_ok=True)
    recording = state / RECORDING
    quiet_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # a free port
    with _exclusive(state):
        server.start()
        try:
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            configure_moto(url)
            recorder._location = str(recording)  # moto reads MOTO_RECORDER_FILEPATH only at import
            if recording.is_file():
                data = recording.read_bytes()  # a killed command may have left its last request half-written
                if data and not data.endswith(b"\n"):
                    with recording.open("r+b") as handle:
                        handle.truncate(data.rfind(b"\n") + 1)
                recorder.replay_recording(target_host=url)
            recorder.start_recording()
            yield url
        finally:
            recorder.stop_recording()
            server.stop()


def reset_local(state: Path) -> bool:
    if not state.exists():
        return False
    with _exclusive(state):  # not while a command uses it
        (state / RECORDING).unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    return True


@dataclass(frozen=True)
class StackOutputs:
    bucket: str
    key_prefix: str
    execution_role_arn: str
    deploy_role_arn: str
    status: str
    alarms: tuple[str, ...]  # infra/template.yaml's (none for a stack bootstrapped before they existed)


def stack_parameters(config: Config, repository: str | None, oidc_provider_arn: str | None) -> dict[str, str]:
    repository = repository or config.deploy.github_repository
    if not repository:
        raise PipelineError(
            "bootstrap needs the GitHub repository whose deploy job may assume the deploy role",
            "pass --github-repository OWNER/NAME (or set [deploy].github_repository in pipeline.toml)",
        )
    parameters = {
        "BucketName": config.deploy.bucket,
        "KeyPrefix": config.deploy.key_prefix,
        "FunctionName": config.function.name,
        "LayerName": config.function.layer_name,
        "AliasName": config.function.alias,
        "DurationAlarmMs": str(config.function.timeout_s * 800),  # 80% of the timeout
        "GitHubRepository": repository,
    }
    if oidc_provider_arn:
        parameters["GitHubOidcProviderArn"] = oidc_provider_arn
    return parameters


def bootstrap(aws: Aws, config: Config, parameters: dict[str, str]) -> StackOutputs:
    """Create or update the stack; on an emulator also the alarms its CloudFormation skips (template_alarms)."""
    from botocore.exceptions import ClientError

    name = config.deploy.stack_name
    body = (config.root / TEMPLATE).read_text()
    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
    }
    waiter = "stack_create_complete"
    if find_stack(aws, name) is None:
        aws.cloudformation.create_stack(**arguments)
    else:
        waiter = "stack_update_complete"
        try:
            aws.cloudformation.update_stack(**arguments)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            waiter = ""
    if waiter:
        try:
            aws.cloudformation.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 450})
        except Exception as exc:  # botocore WaiterError: name the failing resource
            events = aws.cloudformation.describe_stack_events(StackName=name).get("StackEvents", [])
            failed = [
                f"{e.get('LogicalResourceId')} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
                for e in events
                if str(e.get("ResourceStatus", "")).endswith("FAILED")
            ]
            raise PipelineError(
                f"stack {name} did not reach {waiter.replace('_', ' ')} on {aws.where}: "
                f"{failed[-1] if failed else 'no failed resource reported'}",
                "fix the cause in the CloudFormation events, then rerun `python -m ci bootstrap`",
            ) from exc
    if aws.emulated:
        for alarm in template_alarms(body, parameters):
            aws.cloudwatch.put_metric_alarm(**alarm)  # idempotent: creates or updates
    return read_outputs(aws, config)


def find_stack(aws: Aws, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        stacks = aws.cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def read_outputs(aws: Aws, config: Config) -> StackOutputs:
    name = config.deploy.stack_name
    stack = find_stack(aws, name)
    if stack is None:
        raise PipelineError(
            f"stack {name} does not exist on {aws.where}: the bucket and roles deploy needs are missing",
            "run `python -m ci bootstrap` once with the same endpoint"
            if aws.emulated or aws.embedded
            else "run `python -m ci bootstrap --github-repository OWNER/NAME` once, with the same AWS credentials",
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in ("BucketName", "ExecutionRoleArn") if key not in outputs]
    if missing:
        raise PipelineError(
            f"stack {name} on {aws.where} is {stack.get('StackStatus')} and lacks outputs {', '.join(missing)}",
            "rerun `python -m ci bootstrap` and wait for it to complete",
        )
    return StackOutputs(
        bucket=outputs["BucketName"],
        key_prefix=outputs.get("KeyPrefix", config.deploy.key_prefix),
        execution_role_arn=outputs["ExecutionRoleArn"],
        deploy_role_arn=outputs.get("DeployRoleArn", ""),
        status=str(stack.get("StackStatus")),
        alarms=tuple(name for name in str(outputs.get("AlarmNames", "")).split(",") if name),
    )


ALARM_PROPERTIES = (
    "AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic",
    "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData",
)  # fmt: skip


def cfn_loader() -> type[yaml.SafeLoader]:
    """A YAML loader that keeps CloudFormation's short tags (!Sub, !Ref...) as {"Fn": value}."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        construct = loader.construct_sequence if isinstance(node, yaml.SequenceNode) else loader.construct_mapping
        return {suffix: construct(node, deep=True)}

    Loader.add_multi_constructor("!", tagged)
    return Loader


def resolve(value: Any, parameters: dict[str, str]) -> Any:
    """!Ref and !Sub of parameters (all the alarms use); anything else as written."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Sub"}:
        return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: parameters[m.group(1)], value["Sub"])
    if isinstance(value, dict):
        return {key: resolve(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    return value


def template_alarms(body: str, parameters: dict[str, str]) -> list[dict[str, Any]]:
    import yaml

    template = yaml.load(body, Loader=cfn_loader())  # noqa: S506  (a SafeLoader)
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    alarms = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            properties = resolve(resource["Properties"], values)
            arguments = {key: properties[key] for key in ALARM_PROPERTIES if key in properties}
            arguments["Threshold"] = float(arguments["Threshold"])
            alarms.append(arguments)
    return alarms
