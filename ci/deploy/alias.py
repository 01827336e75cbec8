"""The alias and its history: which version is live, and which were live before it.

The history lives in the alias's own description ("history: 1 2 4"), so rollback needs no
other store and survives any machine; when it is missing, version ordering stands in for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PREFIX = "live versions, oldest first (python -m ci deploy/rollback): "
MAX_DESCRIPTION = 256


@dataclass(frozen=True)
class AliasState:
    name: str
    version: str
    history: list[str]  # ends with `version`


def read_alias(lambda_: Any, function_name: str, alias: str) -> AliasState | None:
    from botocore.exceptions import ClientError

    try:
        response = lambda_.get_alias(FunctionName=function_name, Name=alias)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    version = str(response["FunctionVersion"])
    description = str(response.get("Description", ""))
    history = re.findall(r"\d+", description.removeprefix(PREFIX)) if description.startswith(PREFIX) else []
    if not history or history[-1] != version:
        history = [*history, version]
    return AliasState(alias, version, history)


def describe(history: list[str]) -> str:
    """The newest versions that fit in Lambda's 256-character description."""
    kept = list(history)
    while len(PREFIX + " ".join(kept)) > MAX_DESCRIPTION:
        kept.pop(0)
    return PREFIX + " ".join(kept)


def point_alias(
    lambda_: Any, function_name: str, alias: str, version: str, history: list[str], current: AliasState | None
) -> AliasState:
    """Create or move the alias to `version`, recording `history` (which must end with it)."""
    description = describe(history)
    if current is None:
        lambda_.create_alias(FunctionName=function_name, Name=alias, FunctionVersion=version, Description=description)
    else:
        lambda_.update_alias(FunctionName=function_name, Name=alias, FunctionVersion=version, Description=description)
    return AliasState(alias, version, history)


def production_line(state: AliasState | None, alias: str) -> str:
    if state is None:
        return f"production is unchanged (alias {alias} does not exist yet)"
    return f"production is unchanged (alias {alias} -> version {state.version})"
