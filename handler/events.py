"""Recognise the event shape and extract the request payload (a JSON object) from it.

Shapes: a direct invocation (the event is the payload), API Gateway REST proxy (v1), HTTP API (v2)
and Lambda Function URL (v2 format on a *.lambda-url.* domain). HTTP bodies may be base64-encoded.
An HTTP body is written by anyone: every way it can be malformed is a RequestError, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from handler.errors import RequestError
from handler.validation import FLOAT_DIGITS, DuplicateKeys, OutOfRange, kind

DIRECT = "direct"
API_GATEWAY_V1 = "apigw-rest-v1"
HTTP_API_V2 = "apigw-http-v2"
FUNCTION_URL = "function-url"


@dataclass(frozen=True)
class Request:
    source: str  # one of the shape names above
    payload: Any  # the decoded JSON body (not yet validated)

    @property
    def is_http(self) -> bool:
        return self.source != DIRECT


def source_of(event: Any) -> str:
    """The shape of the event: HTTP shapes carry a requestContext (v1 also httpMethod, v2 `http`)."""
    if not isinstance(event, dict):
        return DIRECT
    context = event.get("requestContext")
    if isinstance(context, dict) and isinstance(context.get("http"), dict):
        return FUNCTION_URL if ".lambda-url." in str(context.get("domainName", "")) else HTTP_API_V2
    if "httpMethod" in event or isinstance(context, dict):
        return API_GATEWAY_V1
    return DIRECT


def parse(event: Any, max_body_bytes: int) -> Request:
    source = source_of(event)
    if source == DIRECT:
        return Request(source, event)
    return Request(source, decode_body(event.get("body"), is_base64(event), max_body_bytes))


def is_base64(event: dict[str, Any]) -> bool:
    """Only a JSON boolean: bool("false") is True, so a string here would silently flip the decoding."""
    flag = event.get("isBase64Encoded", False)
    if not isinstance(flag, bool):
        raise RequestError("isBase64Encoded", f"must be true or false, got {kind(flag)}")
    return flag


def decode_body(body: Any, is_base64: bool, max_body_bytes: int) -> Any:
    """The JSON value of an HTTP body; every failure names the field `body`."""
    if body is None or body == "":
        raise RequestError("body", 'the request has no body: send a JSON object such as {"instances": [...]}')
    if not isinstance(body, str):
        raise RequestError("body", f"must be a string of JSON, got {type(body).__name__}")
    if len(body) > max_body_bytes * (4 / 3 if is_base64 else 1) + 4:
        raise RequestError("body", f"is {len(body)} bytes, over the limit of {max_body_bytes} (MAX_BODY_BYTES)")
    raw: bytes
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestError("body", f"isBase64Encoded is true but the body is not valid base64 ({exc})") from exc
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_body_bytes:
        raise RequestError("body", f"is {len(raw)} bytes, over the limit of {max_body_bytes} (MAX_BODY_BYTES)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("body", f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, parse_int=parse_int, parse_float=parse_float, object_pairs_hook=json_object)
    except json.JSONDecodeError as exc:
        raise RequestError("body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise RequestError("body", "is nested too deeply to be a request") from exc


def parse_int(text: str) -> int | OutOfRange:
    """Longer integers overflow a float anyway; int() would refuse those over 4300 digits with a ValueError."""
    if len(text.lstrip("-")) > FLOAT_DIGITS:
        return OutOfRange(text)
    return int(text)


def parse_float(text: str) -> float | OutOfRange:
    """1e999 parses to inf; kept as the text the client sent, so the error can quote it."""
    number = float(text)
    return number if math.isfinite(number) else OutOfRange(text)


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A dict; if a key repeats, one that remembers it (json.loads would silently keep the last value)."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in pairs:
        if key in seen:
            repeated.append(key)
        seen.add(key)
    return DuplicateKeys(result, repeated)
