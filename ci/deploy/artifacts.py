"""The three deployable artifacts, snapshotted once and named by content: the gate, uploads and size
check all read the read-only snapshot, so bytes rewritten during a deploy cannot slip through."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from ci.errors import PipelineError
from ci.paths import BuildPaths
from ci.snapshot import take
from ci.zipsafe import open_zip


@dataclass(frozen=True)
class Artifact:
    name: str  # as ci.reports records it: layer.zip | function.zip | model.joblib
    kind: str  # layer | function | model (the S3 folder)
    path: Path  # the read-only snapshot: exactly the bytes `sha256` names
    sha256: str  # hex
    size: int
    source: Path | None = None  # where the snapshot was taken from (build/...), for messages

    @property
    def code_sha256(self) -> str:
        """Lambda's CodeSha256: base64 of the raw SHA-256 digest of the zip."""
        return hex_to_lambda_sha(self.sha256)

    def key(self, prefix: str) -> str:
        """Content-addressed S3 key: the same bytes always land on the same key."""
        return f"{prefix.strip('/')}/{self.kind}/{self.sha256}{self.path.suffix}"

    def unzipped_bytes(self) -> int:
        """What Lambda counts against its unzipped limit: the sum of the entries' uncompressed sizes."""
        with open_zip(self.path, "rebuild it: `python -m ci build`", self.source) as archive:
            return sum(info.file_size for info in archive.infos)


@dataclass(frozen=True)
class Artifacts:
    layer: Artifact
    function: Artifact
    model: Artifact

    def all(self) -> list[Artifact]:
        return [self.layer, self.function, self.model]


def hex_to_lambda_sha(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def lambda_sha_to_hex(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()


def local_artifacts(paths: BuildPaths) -> Artifacts:
    """Snapshot the artifacts about to be deployed; a missing one names the command that makes it."""
    specs = [
        ("layer.zip", "layer", paths.layer_zip, "python -m ci build"),
        ("function.zip", "function", paths.function_zip, "python -m ci build"),
        ("model.joblib", "model", paths.model, "python -m training"),
    ]
    found = []
    for name, kind, path, command in specs:
        if not path.is_file():
            raise PipelineError(f"{path} not found: nothing to deploy", f"run `{command}` first")
        snapshot = take(paths, path, name)
        found.append(Artifact(name, kind, snapshot.path, snapshot.sha256, snapshot.size, source=path))
    return Artifacts(*found)
