"""The alias and its history (kept in its own description, so rollback needs no other store); it moves
guarded by the RevisionId this run read, so a concurrent move fails this run instead of being lost."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ci.deploy.aws import error_code, unless_aws_error
from ci.errors import PipelineError

PREFIX = "live versions, oldest first (python -m ci deploy/rollback): "
MAX_DESCRIPTION = 256


@dataclass(frozen=True)
class AliasState:
    name: str
    version: str
    history: list[str]  # ends with `version`
    revision_id: str = ""
    description: str = ""
    routing: dict[str, float] = field(default_factory=dict)  # versions besides `version` and their weights

    @property
    def split(self) -> bool:
        """Part of the traffic goes to another version: a gradual deploy is (or was, if it died) shifting."""
        return bool(self.routing)


def read_alias(lambda_: Any, function_name: str, alias: str) -> AliasState | None:
    response = unless_aws_error(lambda: lambda_.get_alias(FunctionName=function_name, Name=alias), None)
    if response is None:
        return None
    version = str(response["FunctionVersion"])
    description = str(response.get("Description", ""))
    history = re.findall(r"\d+", description.removeprefix(PREFIX)) if description.startswith(PREFIX) else []
    if not history or history[-1] != version:
        history = [*history, version]
    weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    routing = {str(v): float(w) for v, w in weights.items() if float(w) > 0}
    return AliasState(alias, version, history, str(response.get("RevisionId", "")), description, routing)


def published_versions(lambda_: Any, name: str) -> list[dict[str, Any]]:
    """The function's published versions, oldest first ($LATEST left out); none if there is no function."""

    def listed() -> list[dict[str, Any]]:
        pages = lambda_.get_paginator("list_versions_by_function").paginate(FunctionName=name)
        return [v for page in pages for v in page.get("Versions", []) if v["Version"] != "$LATEST"]

    return unless_aws_error(listed, [])


def describe(history: list[str]) -> str:
    """The newest versions that fit in Lambda's 256-character description."""
    kept = list(history)
    while len(PREFIX + " ".join(kept)) > MAX_DESCRIPTION:
        kept.pop(0)
    return PREFIX + " ".join(kept)


def point_alias(
    lambda_: Any,
    function_name: str,
    alias: str,
    version: str,
    history: list[str],
    current: AliasState | None,
    routing: dict[str, float] | None = None,
) -> AliasState:
    """Move the alias only if it is still as `current` says: a concurrent move fails this run, never overwritten."""
    from botocore.exceptions import ClientError

    description = describe(history)
    now = read_alias(lambda_, function_name, alias)
    if not same(now, current):  # RevisionId alone is not enough: an emulator may ignore it
        raise moved_concurrently(alias, current, now)
    try:
        if current is None:
            lambda_.create_alias(
                FunctionName=function_name, Name=alias, FunctionVersion=version, Description=description
            )
        else:
            guard = {"RevisionId": current.revision_id} if current.revision_id else {}
            lambda_.update_alias(
                FunctionName=function_name,
                Name=alias,
                FunctionVersion=version,
                Description=description,
                RoutingConfig={"AdditionalVersionWeights": routing or {}},  # none: the version alone
                **guard,
            )
    except ClientError as exc:
        code = error_code(exc)
        if code not in {"PreconditionFailedException", "ResourceConflictException"}:
            raise
        raise moved_concurrently(alias, current, read_alias(lambda_, function_name, alias), f"AWS: {code}") from exc
    return AliasState(alias, version, history, routing=routing or {})


def same(a: AliasState | None, b: AliasState | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.version, a.description, a.revision_id, a.routing) == (b.version, b.description, b.revision_id, b.routing)


def moved_concurrently(
    alias: str, expected: AliasState | None, found: AliasState | None, why: str = ""
) -> PipelineError:
    def where(state: AliasState | None) -> str:
        return "absent" if state is None else f"version {state.version} (revision {state.revision_id or '?'})"

    return PipelineError(
        f"alias {alias} changed while this run held it{f' ({why})' if why else ''}: it was {where(expected)}, "
        f"it is now {where(found)}; it was not moved",
        "another deploy or rollback moved it (outside the deploy lock); check build/reports and rerun",
    )


def production_line(state: AliasState | None, alias: str, read: bool = True) -> str:
    """What production runs after a failure; `read` False when the alias was never read (no claim is made)."""
    if not read:
        return f"production is unchanged by this run (alias {alias} was not read, so its version is not known here)"
    if state is None:
        return f"production is unchanged (alias {alias} does not exist yet)"
    return f"production is unchanged (alias {alias} -> version {state.version})"
