"""The template's CloudWatch alarms, created directly on an emulator whose CloudFormation skips them.

moto creates a stack's other resources but not AWS::CloudWatch::Alarm, and a gradual deploy must read
them, so they are put with PutMetricAlarm under the names and thresholds AWS would create.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

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
    template = yaml.load(body, Loader=cfn_loader())
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


def put_template_alarms(cloudwatch: Any, body: str, parameters: dict[str, str]) -> list[str]:
    """Create (or update: PutMetricAlarm is idempotent) the template's alarms; their names."""
    names = []
    for arguments in template_alarms(body, parameters):
        cloudwatch.put_metric_alarm(**arguments)
        names.append(str(arguments["AlarmName"]))
    return names
