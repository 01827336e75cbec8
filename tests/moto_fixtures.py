"""Deploy test kit: one moto server over HTTP per session, reset per test, and small real artifacts.

The artifacts are real zips (a handler package, a layer with a module) and the reports are
written by ci.reports.write_report exactly as the checks write them, so the gate judges them
for real. Counting calls goes through botocore's own event hooks.
"""

from __future__ import annotations

import json
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ci.config import Config, load_config
from ci.deploy.aws import Aws, connect
from ci.deploy.target import EMBEDDED_REPOSITORY, bootstrap, configure_moto, quiet_moto, stack_parameters
from ci.deploy.verify import (
    Candidate,
    Verdict,
    fetch_function_code,
    fetch_layer,
    fetch_model,
)
from ci.layer import sources
from ci.paths import BuildPaths
from ci.reports import JUDGES, build_artifacts, sha256_file, write_report
from ci.snapshot import Snapshot, take

CHECKS = ("budget", "pins", "abi", "smoke")


def judged(paths: BuildPaths, check: str) -> list[Snapshot]:
    """Snapshots of what `check` reads (ci.reports.JUDGES), as the real check takes them."""
    files = build_artifacts(paths)
    return [take(paths, files[name], name) for name in JUDGES[check]]


HANDLER = """
def lambda_handler(event, context):
    return {"predictions": [{"recall_probability": %s, "days_until_target": None}]}
"""


def moto_post(url: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(url + path, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    quiet_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def moto(moto_url: str) -> str:
    """A clean moto (state reset, Lambda without Docker) for each test."""
    moto_post(moto_url, "/moto-api/reset", b"")
    configure_moto(moto_url)
    return moto_url


@pytest.fixture()
def config() -> Config:
    return load_config()


@pytest.fixture()
def aws(moto: str, config: Config) -> Aws:
    """Clients on the moto server with the bootstrap stack in place, as after `python -m ci bootstrap`."""
    clients = connect(config, endpoint_url=moto, static_credentials=("test", "test"))
    bootstrap(clients, config, stack_parameters(config, EMBEDDED_REPOSITORY, None))
    return clients


def write_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():  # a fixed timestamp: same content, same bytes (like the real build)
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return path


@dataclass
class FakeBuild:
    """A build tree with small but real artifacts; each change rewrites passing reports for it."""

    paths: BuildPaths
    generation: int = 0

    def make(self, layer: str = "v1", function: str = "0.5", model: str = "m1") -> FakeBuild:
        write_zip(self.paths.layer_zip, {"python/fakelib/__init__.py": f"VERSION = {layer!r}\n"})
        write_zip(self.paths.function_zip, {"handler/__init__.py": "", "handler/app.py": HANDLER % function})
        self.paths.model.parent.mkdir(parents=True, exist_ok=True)
        self.paths.model.write_bytes(f"model {model}".encode())
        # As `ci build` records it: the digests of the tree's sources (handler/, locks, config, model).
        write_report(
            self.paths,
            "build",
            True,
            {"sources": sources.record(load_config(), self.paths)},
            judged=judged(self.paths, "build"),
        )
        self.pass_checks()
        return self

    def pass_checks(self, *checks: str) -> None:
        bodies: dict[str, dict[str, Any]] = {"smoke": {"partial": False}}  # a run of every committed event
        for check in checks or CHECKS:
            write_report(
                self.paths,
                check,
                True,
                self.budget_body() if check == "budget" else bodies.get(check, {}),
                judged=judged(self.paths, check),
            )

    def budget_body(self) -> dict[str, Any]:
        def unzipped(path: Path) -> int:
            with zipfile.ZipFile(path) as archive:
                return sum(info.file_size for info in archive.infolist())

        return {
            "components": [
                {"name": "function.zip", "kind": "function", "source": str(self.paths.function_zip),
                 "unzipped_bytes": unzipped(self.paths.function_zip)},
                {"name": "layer.zip", "kind": "layer", "source": str(self.paths.layer_zip),
                 "unzipped_bytes": unzipped(self.paths.layer_zip)},
            ]
        }  # fmt: skip


@pytest.fixture()
def build(tmp_path: Path) -> FakeBuild:
    return FakeBuild(BuildPaths(build=tmp_path / "build", cache=tmp_path / "cache")).make()


class CallLog:
    """Every AWS operation a client made, by service:Operation (through botocore's before-call event)."""

    def __init__(self, aws: Aws) -> None:
        self.calls: Counter[str] = Counter()
        for client in (aws.s3, aws.lambda_, aws.cloudformation, aws.cloudwatch):
            service = client.meta.service_model.service_name
            client.meta.events.register(f"before-call.{service}.*", self._record(service))

    def _record(self, service: str) -> Any:
        def record(model: Any, **_: Any) -> None:
            self.calls[f"{service}:{model.name}"] += 1

        return record

    def count(self, *operations: str) -> int:
        return sum(self.calls[operation] for operation in operations)


WRITES = (
    "s3:PutObject",
    "s3:CreateMultipartUpload",
    "lambda:PublishLayerVersion",
    "lambda:CreateFunction",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:CreateAlias",
    "lambda:UpdateAlias",
)


class BytesCheck:
    """Test-local post-deploy check: downloads what the version holds, proven by Lambda's own digests.

    The same chain the real check follows (CodeSha256 -> bytes, MODEL_SHA256 -> model) without
    the cost of the smoke harness; `seen` records the digests per version for the test to compare
    with the build, and `fail_next` makes the next check fail once.
    """

    def __init__(self, build: FakeBuild) -> None:
        self.build = build
        self.seen: dict[str, dict[str, str]] = {}
        self.fail_next = False

    def __call__(self, aws: Aws, candidate: Candidate) -> Verdict:
        work = self.build.paths.build / "check" / candidate.version
        work.mkdir(parents=True, exist_ok=True)
        downloaded = {
            "function.zip": fetch_function_code(aws, candidate, work / "function.zip"),
            "layer.zip": fetch_layer(aws, candidate, work / "layer.zip"),
            "model.joblib": fetch_model(aws, candidate, work / "model.joblib"),
        }
        self.seen[candidate.version] = {name: sha256_file(path) for name, path in downloaded.items()}
        if self.fail_next:
            self.fail_next = False
            return Verdict(False, "test check", ["direct: status 500, expected 200 (injected)"])
        return Verdict(True, "test: downloaded bytes match Lambda's digests")

    def build_digests(self) -> dict[str, str]:
        paths = self.build.paths
        files = {"function.zip": paths.function_zip, "layer.zip": paths.layer_zip, "model.joblib": paths.model}
        return {name: sha256_file(path) for name, path in files.items()}


def alias_version(aws: Aws, config: Config) -> str:
    response = aws.lambda_.get_alias(FunctionName=config.function.name, Name=config.function.alias)
    return str(response["FunctionVersion"])


def layer_versions(aws: Aws, config: Config) -> list[int]:
    listed = aws.lambda_.list_layer_versions(LayerName=config.function.layer_name)["LayerVersions"]
    return sorted(int(v["Version"]) for v in listed)


def deploy_report(paths: BuildPaths) -> dict[str, Any]:
    return json.loads(paths.report("deploy").read_text())


def lock_location(aws: Aws, config: Config) -> tuple[str, str]:
    """(bucket, key) of the deploy lock, spelled out here rather than taken from ci.deploy.deploy_lock."""
    from ci.deploy.target import read_outputs

    stack = read_outputs(aws, config)
    return stack.bucket, f"{stack.key_prefix}/locks/{config.function.name}.json"


def read_lock(aws: Aws, config: Config) -> dict[str, Any]:
    bucket, key = lock_location(aws, config)
    return dict(json.loads(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
