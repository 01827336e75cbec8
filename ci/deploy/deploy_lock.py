"""One deploy (or rollback) at a time per function: a lock object in the artifact bucket.

Two runs moving the same alias at once would each believe they won and the alias history would
lose a version. The lock is <key_prefix>/locks/<function>.json, taken with a conditional PutObject
(If-None-Match: *), so S3 lets exactly one writer create it. It names its holder and expires
(TTL_S): an expired or released lock is taken over with a PutObject conditional on its ETag
(If-Match), renewed the same way at every step and released by overwriting it as released (the
deploy role may put objects, not delete them; the versioned bucket keeps every holder as history).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ci.errors import PipelineError

TTL_S = 15 * 60
LOST = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


class DeployLockedError(PipelineError):
    """Another deploy or rollback holds the lock: names it, since when, until when."""


def lock_key(prefix: str, function_name: str) -> str:
    return f"{prefix.strip('/')}/locks/{function_name}.json"


def owner(command: str, commit: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Who is deploying, as a person reading the refusal needs it: the run, the actor, the machine."""
    run = environ.get("GITHUB_RUN_ID", "")
    repository = environ.get("GITHUB_REPOSITORY", "")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    return {
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": environ.get("GITHUB_ACTOR") or getpass.getuser(),
        "commit": commit,
        "github_run_id": run,
        "github_run_url": f"{server}/{repository}/actions/runs/{run}" if run and repository else "",
    }


def describe_owner(holder: Mapping[str, Any]) -> str:
    command, user, host = holder.get("command", "deploy"), holder.get("user", "?"), holder.get("host", "?")
    who = f"{command} by {user}@{host} pid {holder.get('pid', '?')}"
    if holder.get("github_run_url") or holder.get("github_run_id"):
        who += f" (run {holder.get('github_run_url') or holder.get('github_run_id')})"
    commit = str(holder.get("commit", ""))
    return who + (f" of commit {commit[:12]}" if commit else "")


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class DeployLock:
    """A lock we hold: its ETag proves it is still ours at the next conditional write."""

    s3: Any
    bucket: str
    key: str
    etag: str
    record: dict[str, Any]
    ttl_s: int = TTL_S
    log: Callable[[str], None] = print
    released: bool = field(default=False)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def renew(self) -> None:
        """Extend the expiry, proving the lock is still ours; raises if someone took it over."""
        from botocore.exceptions import ClientError

        record = {**self.record, "expires_at": stamp(now() + timedelta(seconds=self.ttl_s))}
        try:
            self.etag = put(self.s3, self.bucket, self.key, record, IfMatch=self.etag)
        except ClientError as exc:
            if error_code(exc) not in LOST:
                raise
            holder = read(self.s3, self.bucket, self.key)
            raise PipelineError(
                f"lost the deploy lock {self.uri} (it expired and was taken over by "
                f"{describe_owner(holder[0]) if holder else 'someone else'})",
                "nothing more was changed; wait for that deploy to finish, then rerun",
            ) from exc
        self.record = record

    def release(self) -> None:
        """Mark the lock released (conditional on it still being ours); never masks the deploy's own outcome."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.released:
            return
        record = {**self.record, "released_at": stamp(now())}
        try:
            self.etag = put(self.s3, self.bucket, self.key, record, IfMatch=self.etag)
            self.released = True
        except (ClientError, BotoCoreError) as exc:
            self.log(
                f"warning: could not release the deploy lock {self.uri} ({exc}); "
                f"it expires at {self.record['expires_at']}"
            )


def error_code(exc: Any) -> str:
    response = getattr(exc, "response", {})
    code = str(response.get("Error", {}).get("Code", ""))
    return code or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def put(s3: Any, bucket: str, key: str, record: Mapping[str, Any], **condition: str) -> str:
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(record, indent=2).encode(),
        ContentType="application/json",
        ServerSideEncryption="AES256",
        **condition,
    )
    return str(response["ETag"])


def read(s3: Any, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
    """(record, ETag) of the lock object, or None if there is none."""
    from botocore.exceptions import ClientError

    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise
    try:
        record = json.loads(response["Body"].read())
    except ValueError:
        record = {}
    return (record if isinstance(record, dict) else {}), str(response["ETag"])


def acquire(
    s3: Any,
    bucket: str,
    key: str,
    holder: Mapping[str, Any],
    ttl_s: int = TTL_S,
    log: Callable[[str], None] = print,
) -> DeployLock:
    """Take the lock, or take over an expired/released one; raise DeployLockedError naming a live holder."""
    from botocore.exceptions import ClientError

    acquired = now()
    record = {**holder, "acquired_at": stamp(acquired), "expires_at": stamp(acquired + timedelta(seconds=ttl_s))}
    lock = DeployLock(s3, bucket, key, "", record, ttl_s, log)
    for _ in range(2):  # a second round only if the lock vanished between our two requests
        try:
            lock.etag = put(s3, bucket, key, record, IfNoneMatch="*")
            return lock
        except ClientError as exc:
            if error_code(exc) not in LOST:
                raise
        found = read(s3, bucket, key)
        if found is None:
            continue
        current, etag = found
        if not free(current):
            raise locked(lock.uri, current)
        try:
            lock.etag = put(s3, bucket, key, record, IfMatch=etag)
        except ClientError as exc:
            if error_code(exc) not in LOST:
                raise
            again = read(s3, bucket, key)
            raise locked(lock.uri, again[0] if again else {}) from exc
        if not current.get("released_at"):
            log(
                f"took over the expired deploy lock {lock.uri} of {describe_owner(current)} "
                f"(expired {current.get('expires_at', '?')})"
            )
        return lock
    raise locked(lock.uri, {})


def free(record: Mapping[str, Any]) -> bool:
    """Released, expired, or unreadable (a lock nobody can name holds nothing)."""
    if record.get("released_at"):
        return True
    try:
        return parse(str(record["expires_at"])) <= now()
    except (KeyError, ValueError):
        return True


def locked(uri: str, record: Mapping[str, Any]) -> DeployLockedError:
    return DeployLockedError(
        f"another deploy holds the deploy lock {uri}: {describe_owner(record)}, "
        f"since {record.get('acquired_at', '?')} until {record.get('expires_at', '?')}",
        "wait for it to finish and rerun; if it died, rerun after the expiry (an expired lock is taken over)",
    )


@contextmanager
def held(
    s3: Any,
    bucket: str,
    key: str,
    holder: Mapping[str, Any],
    ttl_s: int = TTL_S,
    log: Callable[[str], None] = print,
) -> Iterator[DeployLock]:
    """The lock for the duration of the block, released however the block ends."""
    lock = acquire(s3, bucket, key, holder, ttl_s, log)
    try:
        yield lock
    finally:
        lock.release()
