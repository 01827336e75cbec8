"""What the model artifact and its manifest say, gathered once: digest, manifest, static scan."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ci.errors import PipelineError
from ci.pins.container import open_container
from ci.pins.policy import distribution_of
from ci.pins.result import Finding, PinsInputs, display
from ci.pins.scan import PickleScan, scan_stream
from ci.reports import sha256_file


@dataclass
class ModelEvidence:
    model_display: str
    manifest_display: str
    artifact_sha256: str | None = None
    manifest: dict[str, Any] | None = None
    compression: str | None = None
    scan: PickleScan | None = None
    problems: list[Finding] = field(default_factory=list)  # could not read model / manifest

    @classmethod
    def gather(cls, inputs: PinsInputs) -> ModelEvidence:
        evidence = cls(display(inputs.shown_model or inputs.model, inputs.root), display(inputs.manifest, inputs.root))
        if inputs.model.is_file():
            evidence.artifact_sha256 = sha256_file(inputs.model)
            try:
                container = open_container(inputs.model)
                evidence.compression = container.compression
                evidence.scan = scan_stream(container.stream)
            except PipelineError as exc:
                evidence.problems.append(Finding("error", exc.problem, exc.fix))
        else:
            evidence.problems.append(
                Finding("error", f"model artifact {evidence.model_display} not found", "train it: `python -m training`")
            )
        if inputs.manifest.is_file():
            try:
                loaded = json.loads(inputs.manifest.read_text())
                if not isinstance(loaded, dict):
                    raise ValueError("not a JSON object")
                evidence.manifest = loaded
            except ValueError as exc:
                evidence.problems.append(
                    Finding("error", f"{evidence.manifest_display} is not a JSON object ({exc})", "retrain the model")
                )
        else:
            evidence.problems.append(
                Finding(
                    "error",
                    f"model manifest {evidence.manifest_display} not found",
                    "train with `python -m training`, which writes model.json next to model.joblib",
                )
            )
        return evidence

    def manifest_versions(self) -> dict[str, str]:
        versions = (self.manifest or {}).get("versions")
        return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}

    def referenced_distributions(self) -> set[str]:
        if self.scan is None:
            return set()
        return {dist for module in self.scan.modules if (dist := distribution_of(module))}

    def info(self) -> dict[str, Any]:
        return {
            "artifact": self.model_display,
            "manifest": self.manifest_display,
            "sha256": self.artifact_sha256,
            "manifest_sha256": (self.manifest or {}).get("sha256"),
            "compression": self.compression,
        }
