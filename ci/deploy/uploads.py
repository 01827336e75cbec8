"""Content-addressed uploads to the artifact bucket, proven by S3's own SHA-256 checksum.

One PutObject per artifact with ChecksumSHA256 set, so S3 rejects any other body; an existing object is
trusted only if S3 reports that same full-object checksum, never metadata a writer chose.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from ci.deploy.artifacts import Artifact, hex_to_lambda_sha, lambda_sha_to_hex
from ci.errors import PipelineError

logger = logging.getLogger(__name__)

MAX_SINGLE_PUT = 5 * 1024**3  # S3's PutObject limit
ENCRYPTION = "AES256"  # matches the bucket default of infra/template.yaml (SSE-S3)


@dataclass(frozen=True)
class Upload:
    artifact: str
    bucket: str
    key: str
    uploaded: bool
    seconds: float
    replaced: str = ""  # what was at the content address before, if it was not our bytes

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def stored_checksum(s3: Any, bucket: str, key: str) -> str | None:
    """S3's full-object SHA-256 checksum of the object (base64; "" if it has none), None if there is no object."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return ""  # a composite (multipart) checksum is a digest of part digests, not of the file
    return str(head.get("ChecksumSHA256") or "")


def describe_checksum(checksum: str) -> str:
    if not checksum:
        return "no full-object SHA-256 checksum"
    try:
        return f"sha256 {lambda_sha_to_hex(checksum)}"
    except ValueError:
        return f"checksum {checksum}"  # e.g. a composite "<base64>-<parts>"


def upload(s3: Any, bucket: str, prefix: str, artifact: Artifact) -> Upload:
    """Put the snapshot's bytes at their content address unless S3 already vouches for exactly them."""
    key = artifact.key(prefix)
    uri = f"s3://{bucket}/{key}"
    started = time.monotonic()
    wanted = hex_to_lambda_sha(artifact.sha256)
    found = stored_checksum(s3, bucket, key)
    if found == wanted:
        return Upload(artifact.name, bucket, key, False, time.monotonic() - started)
    replaced = ""
    if found is not None:
        replaced = describe_checksum(found)
        logger.info(
            f"replacing {uri}: S3 reports {replaced}, not sha256 {artifact.sha256}; the object there is not "
            "these bytes (the bucket is versioned: it stays as a noncurrent version)"
        )
    body = snapshot_bytes(artifact)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=wanted,
        ServerSideEncryption=ENCRYPTION,
    )
    stored = stored_checksum(s3, bucket, key)
    if stored != wanted:
        raise PipelineError(
            f"{uri} was written, but S3 then reported {describe_checksum(stored or '')}, not sha256 {artifact.sha256}",
            "another writer is replacing that key concurrently (or the endpoint does not keep checksums); find it, "
            "stop it and deploy again",
        )
    return Upload(artifact.name, bucket, key, True, time.monotonic() - started, replaced)


def snapshot_bytes(artifact: Artifact) -> bytes:
    """The snapshot's bytes, read once and proven to be the ones its digest names before they are sent."""
    if artifact.size > MAX_SINGLE_PUT:
        raise PipelineError(
            f"{artifact.name} is {artifact.size:,} bytes, over S3's 5 GB single-request limit",
            "a Lambda artifact cannot be that large; check what the build put into it",
        )
    body = artifact.path.read_bytes()
    if hashlib.sha256(body).hexdigest() != artifact.sha256:
        raise PipelineError(
            f"the snapshot {artifact.path} no longer holds sha256 {artifact.sha256}: it was modified after being taken",
            "find what writes into build/snapshots/ (snapshots are read-only), then rerun the checks and deploy",
        )
    return body


def download(s3: Any, bucket: str, key: str, destination: Any) -> None:
    s3.download_file(bucket, key, str(destination))
