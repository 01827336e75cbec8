"""The harness's Runtime API over real HTTP: what it records from the client's init and restore error posts."""

from __future__ import annotations

import http.client

import pytest

from ci.smoke.harness import PREFIX, RuntimeApi


def post(api: RuntimeApi, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection(api.address, timeout=10)
    try:
        connection.request("POST", path, body, headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "recorded"),
    [
        (b'{"errorMessage": "boom", "errorType": "ValueError"}', {"errorMessage": "boom", "errorType": "ValueError"}),
        (b'["not", "an", "object"]', {"errorMessage": '["not", "an", "object"]', "errorType": "Runtime.X"}),
        (b"plain text", {"errorMessage": "plain text", "errorType": "Runtime.X"}),
    ],
)
def test_an_init_error_of_any_body_is_recorded_as_an_object(body: bytes, recorded: dict[str, str]) -> None:
    with RuntimeApi(timeout_s=3, function_arn="arn:aws:lambda:us-east-1:1:function:f") as api:
        status = post(api, f"{PREFIX}/init/error", body, {"Lambda-Runtime-Function-Error-Type": "Runtime.X"})
        assert status == 202 and api.init_error == recorded


@pytest.mark.parametrize("path", [f"{PREFIX}/init", f"{PREFIX}/restore", "/init/error", f"{PREFIX}/invocation/x/error"])
def test_a_post_to_no_error_route_is_refused_and_records_nothing(path: str) -> None:
    with RuntimeApi(timeout_s=3, function_arn="arn:aws:lambda:us-east-1:1:function:f") as api:
        assert post(api, path, b"{}") == 400
        assert api.init_error is None and api.restore_error is None
