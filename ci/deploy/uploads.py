"""Content-addressed uploads to the artifact bucket, skipped when the same bytes are already there.

The key carries the SHA-256, and the object carries it again as x-amz-meta-sha256: a multipart
upload's ChecksumSHA256 is a digest of the part digests, not of the file, so it cannot prove
that an existing object is our file; our own metadata can. Large files go through S3 multipart
(never a request body, whose limit is about 50 MB), each part checksummed with SHA-256.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ci.deploy.artifacts import Artifact, hex_to_lambda_sha
from ci.errors import PipelineError

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
ENCRYPTION = "AES256"  # matches the bucket default of infra/template.yaml (SSE-S3)


@dataclass(frozen=True)
class Upload:
    artifact: str
    bucket: str
    key: str
    uploaded: bool
    seconds: float

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def existing_sha256(s3: Any, bucket: str, key: str) -> tuple[str, str] | None:
    """(source, digest) an existing object vouches for: our metadata (hex) or a whole-object checksum
    (base64); None if there is no object."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    recorded = head.get("Metadata", {}).get("sha256")
    if recorded:
        return "metadata", str(recorded)
    return "checksum", str(head.get("ChecksumSHA256", ""))


def upload(s3: Any, bucket: str, prefix: str, artifact: Artifact) -> Upload:
    """Put `artifact` at its content address unless the same bytes are there already."""
    from boto3.s3.transfer import TransferConfig

    key = artifact.key(prefix)
    started = time.monotonic()
    found = existing_sha256(s3, bucket, key)
    if found in {("metadata", artifact.sha256), ("checksum", hex_to_lambda_sha(artifact.sha256))}:
        return Upload(artifact.name, bucket, key, False, time.monotonic() - started)
    if found is not None and found[0] == "metadata":
        raise PipelineError(
            f"s3://{bucket}/{key} exists with sha256 {found[1]}, not {artifact.sha256}: the content-addressed key "
            "was overwritten by something else",
            "delete that object (the bucket is versioned, nothing is lost) and deploy again",
        )
    # no object, or one without our digest (a multipart checksum is not the file's): upload it
    transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK)
    s3.upload_file(
        str(artifact.path),
        bucket,
        key,
        ExtraArgs={
            "ServerSideEncryption": ENCRYPTION,
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {"sha256": artifact.sha256},
        },
        Config=transfer,
    )
    return Upload(artifact.name, bucket, key, True, time.monotonic() - started)


def download(s3: Any, bucket: str, key: str, destination: Any) -> None:
    s3.download_file(bucket, key, str(destination))
