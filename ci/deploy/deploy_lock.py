"""One deploy (or rollback) at a time per function: a lock object written only with conditional PutObjects
and expired by S3's clock alone; a holder on this machine that provably died is taken over
(docs/design.md, "The deploy lock")."""

import getpass
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Self

from ci.deploy.aws import MISSING, capped, error_code, unless_aws_error
from ci.errors import PipelineError

logger = logging.getLogger(__name__)

TTL_S = 15 * 60
MAX_TTL_S = 24 * 60 * 60
RELEASE_S = 15.0  # the release after a failure must not add a second full call deadline
LOST = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
READ_PREFIXES = ("Get", "Head", "List", "Describe", "Invoke")  # every other operation is a write
UNLOCK_FIX = "python -m ci unlock --reason TEXT"


class DeployLockedError(PipelineError):
    """Another deploy or rollback holds the lock: names it, since when, until when."""


def lock_key(prefix: str, function_name: str) -> str:
    return f"{prefix.strip('/')}/locks/{function_name}.json"


def now() -> datetime:
    """The runner's clock: recorded for the reader only, never used to judge an expiry."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def s3_time(response: Mapping[str, Any]) -> datetime | None:
    """S3's clock: the Date header of its answer (success or error)."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return parsedate_to_datetime(str(headers["date"])).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Found:
    record: dict[str, Any]
    etag: str
    last_modified: datetime
    s3_now: datetime | None

    @property
    def expires(self) -> datetime:
        ttl = self.record.get("ttl_s")  # as its writer set it, if sane
        return self.last_modified + timedelta(seconds=ttl if isinstance(ttl, int) and 0 <= ttl <= MAX_TTL_S else TTL_S)

    def free_because(self) -> str | None:
        """Why the lock may be taken (released, broken, expired, holder dead here), or None if it is held."""
        if self.record.get("released_at"):
            return "released"
        if self.record.get("broken_at"):
            return "broken"
        if not self.record:
            return "unreadable"  # a lock nobody can name holds nothing
        if self.s3_now is not None and self.s3_now >= self.expires:  # no S3 time: judge nothing expired
            return f"expired at {stamp(self.expires)} by S3's clock"
        return gone_from_this_machine(self.record)

    def describe(self) -> str:
        until = f"until {stamp(self.expires)}" + ("" if self.s3_now else " (S3 sent no Date: expiry not judged)")
        return (
            f"{describe_owner(self.record)}, since {self.record.get('acquired_at', '?')} "
            f"(renewed {stamp(self.last_modified)}) {until}, S3 time"
        )


def read(s3: Any, bucket: str, key: str) -> tuple[Found | None, datetime | None]:
    from botocore.exceptions import ClientError

    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in MISSING:
            return None, s3_time(exc.response)
        raise
    try:
        record = json.loads(response["Body"].read())
    except ValueError:
        record = {}
    found = Found(
        record if isinstance(record, dict) else {},
        str(response["ETag"]),
        response["LastModified"].astimezone(UTC),
        s3_time(response),
    )
    return found, found.s3_now


def write(s3: Any, bucket: str, key: str, record: Mapping[str, Any], **condition: str) -> dict[str, Any] | None:
    """A conditional write of the lock object: S3's response, None if someone else wrote it since it was read."""
    body = json.dumps(record, indent=2).encode()
    options = {"ContentType": "application/json", "ServerSideEncryption": "AES256", **condition}
    return unless_aws_error(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body, **options), None, LOST)


@dataclass
class DeployLock:
    """A lock we hold: its ETag proves it is still ours at every conditional write."""

    s3: Any
    bucket: str
    key: str
    etag: str
    record: dict[str, Any]
    written: datetime  # S3's time of our last write
    log: Callable[[str], None] = logger.info

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def rewrite(self, record: dict[str, Any]) -> datetime | None:
        """Write `record` conditional on our ETag (raises PipelineError if it is no longer ours); S3's time."""
        response = write(self.s3, self.bucket, self.key, record, IfMatch=self.etag)
        if response is None:
            raise self.lost()
        self.etag, self.record = str(response["ETag"]), record
        return s3_time(response)

    def verify(self) -> None:
        """Before a write: the lock object must still carry our ETag; renewed once half its life is gone (S3 time)."""
        head = unless_aws_error(lambda: self.s3.head_object(Bucket=self.bucket, Key=self.key), None)
        if head is None or str(head["ETag"]) != self.etag:
            raise self.lost()
        s3_now = s3_time(head)
        if s3_now is None or s3_now - head["LastModified"] >= timedelta(seconds=TTL_S / 2):
            base = s3_now or self.written
            expires = stamp(base + timedelta(seconds=TTL_S))
            self.written = self.rewrite({**self.record, "expires_at": expires, "runner_clock": stamp(now())}) or base

    def lost(self) -> PipelineError:
        found, _ = read(self.s3, self.bucket, self.key)
        if found is None:
            now_held = "the lock object is gone"
        elif broken_at := found.record.get("broken_at"):
            by, reason = found.record.get("broken_by", "?"), found.record.get("reason", "?")
            now_held = f"{by} broke it at {broken_at} (reason: {reason})"
        else:
            now_held = f"{describe_owner(found.record)} holds it now"
        return PipelineError(
            f"lost the deploy lock {self.uri}: {now_held}",
            "this run stopped before its next AWS write; check what the other run did, then rerun",
        )

    @contextmanager
    def held(self, *clients: Any) -> Iterator[Self]:
        """For the block, every write of `clients` (but to the lock itself) first verifies the lock; then released."""

        def before_write(model: Any, params: Mapping[str, Any], **_: Any) -> None:
            if not (model.name.startswith(READ_PREFIXES) or params.get("Key") == self.key):
                self.verify()

        events = [(client, f"before-parameter-build.{client.meta.service_model.service_name}") for client in clients]
        try:
            for client, event in events:
                client.meta.events.register(event, before_write)
            yield self
        finally:
            for client, event in events:
                client.meta.events.unregister(event, before_write)
            self.release()

    def release(self) -> None:
        """Mark the lock released (conditional on it still being ours); never masks the deploy's own outcome."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with capped(self.s3, RELEASE_S):
                self.rewrite({**self.record, "released_at": stamp(now())})
        except (ClientError, BotoCoreError, PipelineError) as exc:
            expires = stamp(self.written + timedelta(seconds=TTL_S))
            self.log(
                f"warning: could not release the deploy lock {self.uri} ({exc}); "
                f"it expires at {expires} (S3 time) unless `{UNLOCK_FIX}` breaks it first"
            )


def acquire(
    s3: Any, bucket: str, key: str, holder: Mapping[str, Any], log: Callable[[str], None] = logger.info
) -> DeployLock:
    """Take the lock, or take over a released, broken, expired or provably dead one; else DeployLockedError."""
    uri = f"s3://{bucket}/{key}"
    found: Found | None = None
    for _ in range(3):  # another round only if someone else wrote between our read and our write
        found, s3_now = read(s3, bucket, key)
        start = s3_now or now()
        record: dict[str, Any] = {
            **holder,
            "token": uuid.uuid4().hex,  # makes our ETag ours alone
            "ttl_s": TTL_S,
            "acquired_at": stamp(start),
            "expires_at": stamp(start + timedelta(seconds=TTL_S)),
            "runner_clock": stamp(now()),
        }
        why = found.free_because() if found is not None else "absent"
        if found is None:
            condition = {"IfNoneMatch": "*"}
        elif why is None:
            raise locked(uri, found)
        else:
            condition = {"IfMatch": found.etag}
            if why not in ("released", "broken"):
                record["took_over"] = {"holder": found.record, "why": why}
        response = write(s3, bucket, key, record, **condition)
        if response is None:
            continue
        if found is not None and why not in ("released", "broken"):
            log(f"took over the deploy lock {uri} of {describe_owner(found.record)}: {why}")
        return DeployLock(s3, bucket, key, str(response["ETag"]), record, s3_time(response) or start, log)
    if found is None:
        raise DeployLockedError(f"could not take the deploy lock {uri}: it kept changing", "rerun in a minute")
    raise locked(uri, found)


def locked(uri: str, found: Found) -> DeployLockedError:
    return DeployLockedError(
        f"another deploy holds the deploy lock {uri}: {found.describe()}",
        "wait for it to finish and rerun; if it died, a holder on this machine is taken over at once, otherwise "
        f"`{UNLOCK_FIX}` breaks the lock (or it expires at the time above)",
    )


def break_lock(s3: Any, bucket: str, key: str, breaker: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """Break a held lock, recording who and why in it, conditional on the ETag read; the unlock report."""
    uri = f"s3://{bucket}/{key}"
    found, s3_now = read(s3, bucket, key)
    if found is None or found.record.get("released_at") or found.record.get("broken_at"):
        state = "no lock object" if found is None else ("released" if found.record.get("released_at") else "broken")
        return {"status": "not held", "lock": state}
    record = {
        "broken_at": stamp(s3_now or now()),
        "broken_by": describe_owner(breaker),
        "breaker": dict(breaker),
        "reason": reason,
        "holder": found.record,
        "holder_last_renewed": stamp(found.last_modified),
    }
    response = write(s3, bucket, key, record, IfMatch=found.etag)
    if response is None:
        raise PipelineError(
            f"the deploy lock {uri} changed while it was being broken; nothing was broken",
            f"rerun `{UNLOCK_FIX}` to see (and break) the current holder",
        )
    return {
        "status": "broken",
        "lock": uri,
        "version_id": str(response.get("VersionId", "")),
        "holder": describe_owner(found.record),
        "broken_at": record["broken_at"],
        "broken_by": record["broken_by"],
        "reason": reason,
        "holder_record": found.record,
    }


PROC = Path("/proc")


def owner(command: str, commit: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Who is deploying, as a person reading the refusal needs it: the run, the actor, the machine."""
    run = environ.get("GITHUB_RUN_ID", "")
    repository = environ.get("GITHUB_REPOSITORY", "")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    return {
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process": process_identity(os.getpid()),
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


def read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), "" if unknown."""
    stat = read_text(PROC / str(pid) / "stat")
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else ""


def process_identity(pid: int) -> dict[str, str]:
    try:
        namespace = str((PROC / "self" / "ns" / "pid").readlink())
    except OSError:
        namespace = ""
    return {
        "boot_id": read_text(PROC / "sys" / "kernel" / "random" / "boot_id"),
        "pid_namespace": namespace,
        "start_ticks": start_ticks(pid),
    }


def gone_from_this_machine(holder: Mapping[str, Any]) -> str | None:
    """Why the holder is provably dead (a sentence), or None if it may be alive or is not ours to judge."""
    recorded = holder.get("process")
    pid = holder.get("pid")
    if not isinstance(recorded, dict) or not isinstance(pid, int) or pid <= 0:
        return None
    here = process_identity(os.getpid())
    if holder.get("host") != socket.gethostname() or not all(
        recorded.get(key) and recorded.get(key) == here[key] for key in ("boot_id", "pid_namespace")
    ):
        return None  # another machine, boot or container: its pids mean nothing here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} on this host ({holder.get('host')}) is no longer running"
    except PermissionError:
        pass  # it exists, under another user
    started = start_ticks(pid)
    if started and recorded.get("start_ticks") and started != recorded["start_ticks"]:
        return f"process {pid} on this host ({holder.get('host')}) ended (the pid now belongs to a newer process)"
    return None
