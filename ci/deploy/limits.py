"""Lambda's combined unzipped limit, checked again against the layers really attached to $LATEST.

Lambda reports CodeSize zipped, so the unzipped figures come from the budget report the gate already tied
to these zips; an attached layer the budget never counted is refused rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci.config import Config
from ci.errors import CheckFailedError
from ci.paths import BuildPaths
from ci.reports import read_report


@dataclass(frozen=True)
class SizeCheck:
    used_bytes: int
    limit_bytes: int
    parts: dict[str, int]


def check_attached_size(
    config: Config, paths: BuildPaths, latest: dict[str, Any], our_layer_arn: str, function_unzipped: int
) -> SizeCheck:
    components = read_report(paths, "budget").get("components", [])
    by_kind = {c["kind"]: int(c["unzipped_bytes"]) for c in components if c.get("kind") in {"function", "layer"}}
    extras = {str(c["source"]): int(c["unzipped_bytes"]) for c in components if c.get("kind") == "extra layer"}
    parts = {"function code": by_kind.get("function", function_unzipped)}
    unknown = []
    for layer in latest.get("Layers", []):
        arn = layer["Arn"]
        if arn == our_layer_arn and "layer" in by_kind:
            parts[arn] = by_kind["layer"]
        elif arn in extras:
            parts[arn] = extras[arn]
        else:
            unknown.append(arn)
    limit = config.budget.limit_bytes
    if unknown:
        raise CheckFailedError(
            f"function {latest.get('FunctionName')} has layers the size budget never counted: {', '.join(unknown)}",
            "declare them in pipeline.toml [[budget.extra_layer_arns]] with their unzipped_bytes and rerun "
            "`python -m ci budget`; production is unchanged",
        )
    used = sum(parts.values())
    if used > limit:
        raise CheckFailedError(
            f"function code combined with the attached layers is {used:,} bytes unzipped, over Lambda's "
            f"{limit:,}-byte limit (" + ", ".join(f"{name}: {size:,}" for name, size in parts.items()) + ")",
            "shrink the layer (see build/reports/budget.json suggestions) or drop an extra layer",
        )
    return SizeCheck(used, limit, parts)
