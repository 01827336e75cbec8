"""Bytecode and the import trace: unchecked-hash, deterministic, sourceless imports, traced modules only."""

from __future__ import annotations

import json
from pathlib import Path

from ci.arch.interpreter import run_isolated, target_python
from ci.layer import bytecode, verify
from ci.layer.verify import Runner
from tests.config_fixtures import PYC_TAG
from tests.config_fixtures import PYTHON as TARGET_PYTHON

PYTHON = target_python(TARGET_PYTHON)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_site(root: Path) -> Path:
    write(
        root,
        {
            "lib/__init__.py": "from lib.used import double\n",
            "lib/used.py": "def double(x):\n    return 2 * x\n",
            "lib/unused.py": "raise RuntimeError('never imported')\n",
            "lib/table.txt": "7\n",
        },
    )
    return root


def test_pyc_are_unchecked_hash_and_identical_across_fresh_compilations(tmp_path: Path) -> None:
    site = make_site(tmp_path / "python")
    for cache in ("cache1", "cache2"):
        bytecode.compile_files(PYTHON, TARGET_PYTHON, site, ["lib/used.py"], tmp_path / cache, False, "/opt/python")
    first, second = (sorted((tmp_path / c).glob("*.pyc")) for c in ("cache1", "cache2"))
    assert first[0].read_bytes() == second[0].read_bytes()
    pyc = site / f"lib/__pycache__/used.{PYC_TAG}.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01, "hash-based (bit 0) and unchecked (bit 1 clear): never stats the source"


def test_sourceless_modules_import_without_their_source(tmp_path: Path) -> None:
    site = make_site(tmp_path / "python")
    files, size = bytecode.compile_files(
        PYTHON, TARGET_PYTHON, site, ["lib/__init__.py", "lib/used.py"], tmp_path / "c", True, "/opt/python"
    )
    assert files == 2 and size > 0
    (site / "lib/__init__.py").unlink()
    (site / "lib/used.py").unlink()
    run = run_isolated(PYTHON, [site], "import lib; print(lib.double(21), lib.used.__spec__.loader.__class__.__name__)")
    assert run.stdout.split() == ["42", "SourcelessFileLoader"], run.stderr


def test_the_trace_records_what_the_handler_imports_opens_and_answers(tmp_path: Path) -> None:
    site = make_site(tmp_path / "python")
    function = tmp_path / "function"
    write(
        function,
        {
            "handler/__init__.py": "",
            "handler/app.py": (
                "import os\nimport pathlib\nimport lib\n"
                "TABLE = pathlib.Path(lib.__file__).with_name('table.txt')\n"
                "def lambda_handler(event, context):\n"
                "    size = len(open(os.environ['MODEL_PATH'], 'rb').read())\n"
                "    return {'value': lib.double(event['x']) + int(TABLE.read_text()), 'model_bytes': size}\n"
            ),
        },
    )
    events = tmp_path / "events"
    write(events, {f"e{i}.json": json.dumps({"description": "d", "event": {"x": i}, "expect": {}}) for i in (1, 2)})
    model = tmp_path / "model.joblib"
    model.write_bytes(b"N.")  # None, pickled (protocol 0): the scan accepts it
    traced = verify.trace_handler(Runner(PYTHON), site, function, "handler.app.lambda_handler", events, model)
    assert traced.workload == "events" and not traced.warnings
    assert traced.results == [{"value": 9, "model_bytes": 2}, {"value": 11, "model_bytes": 2}]
    assert traced.modules == ["lib/__init__.py", "lib/used.py"]
    assert "lib/table.txt" in traced.files and "lib/unused.py" not in traced.files

    import_only = verify.trace_handler(Runner(PYTHON), site, function, "handler.app.lambda_handler", events, None)
    assert import_only.workload == "import-only" and import_only.results == []
    assert "no model" in import_only.warnings[0]


def test_a_changed_answer_fails_the_proof() -> None:
    import pytest

    from ci.errors import CheckFailedError

    before = verify.ImportTrace("events", [], [], results=[{"p": 0.5}])
    after = verify.ImportTrace("events", [], [], results=[{"p": 0.25}])
    verify.compare_results(before, before, "bytecode=runtime")
    with pytest.raises(CheckFailedError, match="answers 1 event"):
        verify.compare_results(before, after, "sourceless")


def test_compiled_bytecode_replaces_an_installed_file_never_writes_through_its_link(tmp_path: Path) -> None:
    """Installed files are hard links into the unpacked-wheel cache: the step makes new files."""
    site = tmp_path / "python"
    (site / "lib").mkdir(parents=True)
    (site / "lib" / "used.py").write_text("VALUE = 1\n")
    shipped = tmp_path / "cache" / "unpacked" / "shipped.pyc"  # a wheel's own bytecode, kept by the config
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"the wheel's bytes")
    target = site / bytecode.pyc_path("lib/used.py", TARGET_PYTHON, False)
    target.parent.mkdir(parents=True)
    target.hardlink_to(shipped)
    bytecode.compile_files(PYTHON, TARGET_PYTHON, site, ["lib/used.py"], tmp_path / "pyc", False, "/opt/python")
    assert shipped.read_bytes() == b"the wheel's bytes"
    assert target.read_bytes() != b"the wheel's bytes" and not target.samefile(shipped)
    [compiled] = (tmp_path / "pyc").glob("*.pyc")
    assert target.samefile(compiled), "placed as a link to the bytecode cache: no data written"
