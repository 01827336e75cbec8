"""The bootstrap stack (infra/template.yaml), whose outputs name the bucket and roles every deploy uses;
on an emulator whose CloudFormation skips AWS::CloudWatch::Alarm, the alarms are put directly."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ci.config import Config
from ci.deploy.aws import Aws
from ci.errors import PipelineError

TEMPLATE = Path("infra") / "template.yaml"
EMBEDDED_REPOSITORY = "local/embedded"  # the embedded moto has no GitHub; any owner/name will do


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
    outputs = apply_template(aws, config, parameters)
    if aws.emulated:
        for arguments in template_alarms((config.root / TEMPLATE).read_text(), parameters):
            aws.cloudwatch.put_metric_alarm(**arguments)  # idempotent: creates or updates
    return outputs


def apply_template(aws: Aws, config: Config, parameters: dict[str, str]) -> StackOutputs:
    """Create the stack, or update it in place; wait for CloudFormation either way."""
    from botocore.exceptions import ClientError

    name = config.deploy.stack_name
    body = (config.root / TEMPLATE).read_text()
    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
    }
    if find_stack(aws, name) is None:
        aws.cloudformation.create_stack(**arguments)
        waiter = "stack_create_complete"
    else:
        try:
            aws.cloudformation.update_stack(**arguments)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            return read_outputs(aws, config)
        waiter = "stack_update_complete"
    try:
        aws.cloudformation.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 450})
    except Exception as exc:  # botocore WaiterError: name the failing resource
        raise PipelineError(
            f"stack {name} did not reach {waiter.replace('_', ' ')} on {aws.where}: {stack_failure(aws, name)}",
            "fix the cause in the CloudFormation events, then rerun `python -m ci bootstrap`",
        ) from exc
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


def stack_failure(aws: Aws, name: str) -> str:
    events = aws.cloudformation.describe_stack_events(StackName=name).get("StackEvents", [])
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")]
    if not failed:
        return "no failed resource reported"
    first = failed[-1]
    return f"{first.get('LogicalResourceId')} {first.get('ResourceStatus')}: {first.get('ResourceStatusReason', '')}"


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

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node, deep=True)}
        return {suffix: loader.construct_mapping(node, deep=True)}

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
    """PutMetricAlarm arguments of each AWS::CloudWatch::Alarm in the template."""
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
