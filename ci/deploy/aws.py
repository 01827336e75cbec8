"""boto3 clients from the environment as boto3 users expect, every call bounded per socket read and in
wall-clock time, and AccessDenied turned into an error naming the action and resource."""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from ci.config import Config
from ci.errors import PipelineError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import boto3
    from botocore.loaders import Loader

T = TypeVar("T")
D = TypeVar("D")
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden", "403"}
# The IAM action behind an S3 API operation when the names differ (the rest map 1:1 to service:Operation).
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListObjectsV2": "s3:ListBucket",
}
MISSING = {"ResourceNotFoundException", "NoSuchKey", "NotFound", "404"}  # nothing there (yet)
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass(frozen=True)
class Timeouts:
    """Per socket read and wall-clock bounds: a trickling endpoint never trips a read timeout (docs/commands.md)."""

    connect_s: float = 10.0
    read_s: float = 55.0
    attempts: int = 2
    call_s: float = 60.0
    step_s: float = 300.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Timeouts:
        try:
            timeouts = cls(
                connect_s=float(environ.get("CI_AWS_CONNECT_TIMEOUT", cls.connect_s)),
                read_s=float(environ.get("CI_AWS_READ_TIMEOUT", cls.read_s)),
                attempts=int(environ.get("AWS_MAX_ATTEMPTS", cls.attempts)),
                call_s=float(environ.get("CI_AWS_CALL_DEADLINE", cls.call_s)),
                step_s=float(environ.get("CI_DEPLOY_STEP_DEADLINE", cls.step_s)),
            )
        except ValueError as exc:
            raise PipelineError(
                f"invalid AWS timeout setting: {exc}",
                "set CI_AWS_CONNECT_TIMEOUT/CI_AWS_READ_TIMEOUT/CI_AWS_CALL_DEADLINE/CI_DEPLOY_STEP_DEADLINE to "
                "seconds and AWS_MAX_ATTEMPTS to a count",
            ) from exc
        if min(timeouts.connect_s, timeouts.read_s, timeouts.call_s, timeouts.step_s) <= 0 or timeouts.attempts < 1:
            raise PipelineError(
                f"invalid AWS timeout setting: {timeouts.describe()}",
                "every timeout and deadline must be above 0 seconds and AWS_MAX_ATTEMPTS at least 1",
            )
        return timeouts

    def describe(self) -> str:
        return (
            f"connect {self.connect_s:g} s, read {self.read_s:g} s, {self.attempts} attempt(s), "
            f"{self.call_s:g} s per call"
        )


@dataclass
class Aws:
    session: Any
    region: str
    endpoint_url: str | None
    embedded: bool
    timeouts: Timeouts
    deadlines: Deadlines
    s3: Any
    lambda_: Any
    cloudformation: Any
    cloudwatch: Any  # alarms read during a gradual deploy (ci/deploy/shift.py)

    @property
    def emulated(self) -> bool:
        """True when the endpoint is on the loopback interface: an emulator that cannot run code."""
        return is_loopback(self.endpoint_url)

    @property
    def where(self) -> str:
        return f"{self.endpoint_url} ({self.region})"


def is_loopback(url: str | None) -> bool:
    host = urlparse(url or "").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_configured(environ: Mapping[str, str] = os.environ) -> str | None:
    """AWS_ENDPOINT_URL, or any service-specific AWS_ENDPOINT_URL_<SERVICE> (boto3 reads both)."""
    if environ.get("AWS_ENDPOINT_URL"):
        return environ["AWS_ENDPOINT_URL"]
    return next((value for key, value in environ.items() if key.startswith("AWS_ENDPOINT_URL_") and value), None)


def credentials_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether boto3 would find credentials (shared files included), without asking a metadata service."""
    if any(environ.get(name) for name in CREDENTIAL_VARIABLES):
        return True
    import boto3

    session = boto3.Session()
    resolver = session._session.get_component("credential_provider")
    for method in ("env", "assume-role", "shared-credentials-file", "custom-process", "config-file", "sso"):
        provider = resolver.get_provider(method)
        try:
            if provider.load() is not None:
                return True
        except Exception:  # noqa: BLE001  # a half-written profile is still "configured": boto3 will explain it
            return True
    return False


@functools.cache
def service_models(data_path: str | None = None) -> Loader:
    """botocore's read-only service models, parsed once per process instead of once per session."""
    import boto3
    from botocore.loaders import create_loader

    loader = create_loader(data_path)
    loader.search_paths.append(str(Path(boto3.__file__).parent / "data"))
    return loader


def new_session(region: str, credentials: tuple[str, str] | None = None) -> boto3.Session:
    """A boto3 session (its own credentials and configuration) reading the shared service models."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    key, secret = credentials or (None, None)
    session = boto3.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name=region, botocore_session=core
    )
    # After boto3 has set up its own loader (it appends its data path to whichever is registered).
    core.register_component("data_loader", service_models(core.get_config_variable("data_path")))
    return session


def connect(
    config: Config,
    endpoint_url: str | None = None,
    static_credentials: tuple[str, str] | None = None,
    environ: Mapping[str, str] = os.environ,
    embedded: bool = False,
    timeouts: Timeouts | None = None,
) -> Aws:
    """Clients with standard retries, deadlines and readable denials; boto3 reads AWS_ENDPOINT_URL itself."""
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError

    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or config.deploy.region
    try:
        session = new_session(region)
        found = static_credentials is not None or session.get_credentials() is not None
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise PipelineError(f"boto3 could not load the AWS configuration: {exc}", "fix AWS_PROFILE or ~/.aws") from exc
    if not found:
        endpoint = endpoint_url or endpoint_configured(environ)
        if not is_loopback(endpoint):
            raise PipelineError(
                f"no AWS credentials found for {endpoint or 'AWS'} (region {region})",
                "configure credentials the usual boto3 way (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or OIDC via aws-actions/configure-aws-credentials), or set AWS_ENDPOINT_URL to an emulator",
            )
        static_credentials = ("emulator", "emulator")  # moto accepts any key; nothing to leak
    if static_credentials:
        session = new_session(region, static_credentials)
    timeouts = timeouts or Timeouts.from_environ(environ)
    boto_config = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": timeouts.attempts},  # max_attempts counts retries
        connect_timeout=timeouts.connect_s,
        read_timeout=timeouts.read_s,
    )
    clients = {  # as Aws's attributes: lambda_, since lambda is a keyword
        attribute: session.client(attribute.rstrip("_"), endpoint_url=endpoint_url, config=boto_config)
        for attribute in ("s3", "lambda_", "cloudformation", "cloudwatch")
    }
    endpoint = clients["lambda_"].meta.endpoint_url
    credentials = "static (emulator or given)" if static_credentials else "from the boto3 chain"
    logger.debug(f"AWS: region {region}, endpoint {endpoint}, credentials {credentials}, {timeouts.describe()}")
    deadlines = Deadlines(call_s=timeouts.call_s, step_s=timeouts.step_s)
    for client in clients.values():
        install_denied_hook(client)
        deadlines.install(client)
    return Aws(session, region, endpoint, embedded, timeouts, deadlines, **clients)


def error_code(exc: Any) -> str:
    """AWS's error code, else the HTTP status (S3 answers a HEAD with no body)."""
    response = getattr(exc, "response", {})
    code = str(response.get("Error", {}).get("Code", ""))
    return code or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def unless_aws_error(call: Callable[[], T], default: D, codes: Collection[str] = MISSING) -> T | D:
    """`call()`, or `default` when AWS answers one of `codes` (by default: nothing is there)."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        if error_code(exc) not in codes:
            raise
        return default


def unanswered(exc: BaseException, timeouts: Timeouts | None = None) -> PipelineError | None:
    """A PipelineError naming the endpoint that did not answer (timeout, refused, unreachable), else None."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    verbs = (
        (ReadTimeoutError, "accepted the connection but did not answer"),
        (ConnectTimeoutError, "did not accept a connection"),
        (EndpointConnectionError, "could not be reached"),
    )
    verb = next((verb for kind, verb in verbs if isinstance(exc, kind)), None)
    if verb is None:
        return None
    endpoint = str(getattr(exc, "kwargs", {}).get("endpoint_url", "")) or "the AWS endpoint"
    within = f" within the bounds ({timeouts.describe()})" if timeouts else ""
    return PipelineError(
        f"{endpoint} {verb}{within}",
        "check that the endpoint is up and reachable (AWS_ENDPOINT_URL, region, network, proxy), then rerun; "
        "CI_AWS_CONNECT_TIMEOUT/CI_AWS_READ_TIMEOUT/AWS_MAX_ATTEMPTS/CI_AWS_CALL_DEADLINE change the bounds",
    )


@contextmanager
def readable_aws_errors(what: str, timeouts: Timeouts | None = None) -> Iterator[None]:
    """Any other botocore failure as a PipelineError: the operation, AWS's message, what to check."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        silent = unanswered(exc, timeouts)
        if silent is not None:
            raise PipelineError(f"{what} failed: {silent.problem}", silent.fix) from exc
        raise PipelineError(f"{what} failed: {exc}", "check the endpoint, region and credentials, then rerun") from exc


def install_denied_hook(client: Any) -> None:
    """Turn AccessDenied into an error naming the action and resource, for every call, waiter and transfer."""
    service = client.meta.service_model.service_name

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["ci_params"] = dict(params)

    def judge(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        code = str(parsed.get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""
        if http_response.status_code < 300 or code not in DENIED_CODES:
            return
        action = f"{service}:{model.name}"
        if service == "s3":
            action = S3_ACTIONS.get(model.name, action)
        resource = denied_resource(service, context.get("ci_params", {}))
        message = str(parsed.get("Error", {}).get("Message", ""))
        hint = (
            " (S3 answers 403 rather than 404 for a missing key unless s3:ListBucket is allowed too)"
            if model.name == "HeadObject"
            else ""
        )
        raise PipelineError(
            f"AWS denied {action} on {resource}" + (f": {message}" if message and message != "Forbidden" else ""),
            f"allow {action} on {resource} for the identity running this command{hint}; the deploy role in "
            "infra/template.yaml lists exactly what deploy needs (update the stack with `python -m ci bootstrap`)",
        )

    client.meta.events.register(f"before-parameter-build.{service}.*", remember)
    client.meta.events.register(f"after-call.{service}.*", judge)


def denied_resource(service: str, params: Mapping[str, Any]) -> str:
    if service == "s3":
        bucket, key = params.get("Bucket", "*"), params.get("Key")
        return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
    if service == "lambda":
        if "Arn" in params:
            return str(params["Arn"])
        if "LayerName" in params:
            version = params.get("VersionNumber")
            return f"layer {params['LayerName']}" + (f" version {version}" if version else "")
        if "FunctionName" in params:
            qualifier = params.get("Qualifier") or params.get("Name")
            return f"function {params['FunctionName']}" + (f":{qualifier}" if qualifier else "")
    if service == "cloudformation" and "StackName" in params:
        return f"stack {params['StackName']}"
    return "*"


FIX = (
    "check that the endpoint is up and answering (AWS_ENDPOINT_URL, region, network, proxy), then rerun; "
    "CI_AWS_CALL_DEADLINE / CI_DEPLOY_STEP_DEADLINE change the bounds"
)
_abandoned = threading.local()  # the worker thread's "give up" flag, read by before-send
_installed: weakref.WeakKeyDictionary[Any, Deadlines] = weakref.WeakKeyDictionary()


@dataclass
class Deadlines:
    """Per-call and per-step wall-clock bounds shared by one connection's clients; `capped()` narrows them."""

    call_s: float
    step_s: float
    step_name: str = ""
    step_ends: float | None = None  # time.monotonic() value
    cap_s: float | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        outer = (self.step_name, self.step_ends)
        self.step_name, self.step_ends = name, time.monotonic() + self.step_s
        try:
            yield
        finally:
            self.step_name, self.step_ends = outer

    @contextmanager
    def capped(self, seconds: float) -> Iterator[None]:
        outer = self.cap_s
        self.cap_s = seconds if outer is None else min(outer, seconds)
        try:
            yield
        finally:
            self.cap_s = outer

    def budget(self) -> tuple[float, str]:
        """(seconds left for the next call, what bounds it)."""
        bounds = [(self.call_s, f"the {self.call_s:g} s per-call deadline, every attempt included")]
        if self.cap_s is not None:
            bounds.append((self.cap_s, f"a {self.cap_s:g} s bound"))
        if self.step_ends is not None:
            bounds.append((self.step_ends - time.monotonic(), f"step '{self.step_name}''s {self.step_s:g} s deadline"))
        return min(bounds, key=lambda bound: bound[0])  # the first of equal bounds

    def install(self, client: Any) -> None:
        """Bound every operation method of `client` (as instance attributes, so paginators and waiters use them)."""
        from botocore import xform_name

        service = client.meta.service_model.service_name
        for operation in client.meta.service_model.operation_names:
            model = client.meta.service_model.operation_model(operation)
            method = xform_name(operation)
            setattr(client, method, self._bounded(client, service, model, getattr(client, method)))
        client.meta.events.register(f"before-send.{service}", refuse_abandoned)
        _installed[client] = self

    def _bounded(self, client: Any, service: str, model: Any, method: Callable[..., Any]) -> Callable[..., Any]:
        payload = model.output_shape.serialization.get("payload") if model.has_streaming_output else None

        def call(*args: Any, **kwargs: Any) -> Any:
            what = f"{client.meta.endpoint_url} ({service} {model.name})"
            seconds, why = self.budget()
            if seconds <= 0:
                raise PipelineError(f"{what} was not called: {why} had passed", FIX)
            return run_within(lambda: read_payload(method(*args, **kwargs), payload), seconds, what, why)

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call


def read_payload(response: Any, payload: str | None) -> Any:
    """A streaming body (GetObject's Body, Invoke's Payload) read now, inside the call's deadline."""
    if payload is None or not isinstance(response, dict) or payload not in response:
        return response
    from botocore.response import StreamingBody

    data = response[payload].read()
    response[payload] = StreamingBody(io.BytesIO(data), len(data))
    return response


def run_within(work: Callable[[], Any], seconds: float, what: str, why: str) -> Any:
    """`work()` on a daemon thread; its result or exception, or a PipelineError naming the deadline after `seconds`."""
    done, abandoned = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def worker() -> None:
        _abandoned.event = abandoned
        try:
            box["result"] = work()
        except BaseException as exc:  # noqa: BLE001  # handed to the caller as is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=worker, name=f"aws call {what}", daemon=True).start()
    if not done.wait(seconds):
        abandoned.set()
        if not done.is_set():
            raise PipelineError(f"{what} did not finish within {why}", FIX)
    if "error" in box:
        raise box["error"]
    return box["result"]


def refuse_abandoned(**_: Any) -> None:
    """before-send: a call its caller gave up on sends nothing more (its retry would land unseen)."""
    event = getattr(_abandoned, "event", None)
    if event is not None and event.is_set():
        raise PipelineError("an abandoned AWS call tried to send another request", FIX)


def capped(client: Any, seconds: float) -> AbstractContextManager[None]:
    """Calls of `client` bounded by `seconds` for the block (a no-op for a client without deadlines)."""
    deadlines = _installed.get(client)
    return nullcontext() if deadlines is None else deadlines.capped(seconds)
