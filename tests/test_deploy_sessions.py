"""Each `connect` has its own session (credentials, region, retries) but botocore's service models
are parsed once per process: the deploy, its post-deploy check and a rollback each connect, and
so does every deploy test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.loaders import JSONFileLoader

from ci.config import load_config
from ci.deploy.aws import connect, service_models

ENDPOINT = "http://127.0.0.1:9"  # nothing is called: clients are only made


@pytest.fixture()
def files_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The JSON model files botocore reads from disk, as it reads them."""
    read: list[str] = []
    real = JSONFileLoader.load_file

    def load_file(self: JSONFileLoader, file_path: str) -> object:
        read.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", load_file)
    yield read


def test_a_second_connect_reads_no_service_model_again(files_read: list[str]) -> None:
    config = load_config()
    connect(config, endpoint_url=ENDPOINT, static_credentials=("first", "secret-1"))
    files_read.clear()

    connect(config, endpoint_url=ENDPOINT, static_credentials=("second", "secret-2"))

    assert files_read == [], f"parsed again: {files_read}"


def test_sessions_sharing_the_models_keep_their_own_credentials_and_region() -> None:
    config = load_config()
    first = connect(config, endpoint_url=ENDPOINT, static_credentials=("first", "secret-1"))
    second = connect(
        config, endpoint_url=ENDPOINT, static_credentials=("second", "secret-2"), environ={"AWS_REGION": "ap-south-2"}
    )

    assert first.lambda_._request_signer._credentials.access_key == "first"
    assert second.lambda_._request_signer._credentials.access_key == "second"
    assert (first.region, second.region) == (config.deploy.region, "ap-south-2")
    assert second.lambda_.meta.region_name == "ap-south-2"
    paths = service_models().search_paths
    assert len(paths) == len(set(paths)), f"each session added its path again: {paths}"


def test_botocores_extra_model_directories_are_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_DATA_PATH (botocore's data_path) adds model directories; the shared models honour it."""
    model = tmp_path / "models" / "acme-widgets" / "2020-01-01" / "service-2.json"
    model.parent.mkdir(parents=True)
    metadata = {"apiVersion": "2020-01-01", "endpointPrefix": "widgets", "protocol": "json", "serviceId": "Acme"}
    model.write_text(json.dumps({"version": "2.0", "metadata": metadata, "operations": {}, "shapes": {}}))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "models"))

    aws = connect(load_config(), endpoint_url=ENDPOINT, static_credentials=("k", "s"))

    assert "acme-widgets" in aws.session.get_available_services()
    assert "lambda" in aws.session.get_available_services()
