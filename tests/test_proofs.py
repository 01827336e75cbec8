"""Proofs reused only for the exact bytes, interpreter and code they were made with (ci/layer/build.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ci.config import load_config
from ci.errors import CheckFailedError
from ci.layer.build import ProofStore, binaries_digest, build_layer, reuse_note, tree_digest
from ci.paths import BuildPaths
from tests.test_build_pipeline import make_project

FACTS = {"site": "a" * 64, "interpreter": "native b", "prover": "c" * 64}


def make_tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "pkg" / "sub" / "lib.so").write_bytes(b"\x7fELF" + bytes(100))
    return root


def test_a_tree_digest_names_every_byte_mode_name_and_directory_and_not_where_the_tree_is(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "one")
    original = tree_digest(tree)
    assert tree_digest(shutil.copytree(tree, tmp_path / "two")) == original, "the same content elsewhere"

    changes = {
        "a byte": lambda t: (t / "pkg" / "__init__.py").write_text("X = 2\n"),
        "an executable bit": lambda t: (t / "pkg" / "sub" / "lib.so").chmod(0o755),
        "an empty directory (a namespace package)": lambda t: (t / "pkg" / "empty").mkdir(),
        "an empty file": lambda t: (t / "pkg" / "py.typed").write_text(""),
        "a renamed file": lambda t: (t / "pkg" / "sub" / "lib.so").rename(t / "pkg" / "sub" / "lib2.so"),
        "a symbolic link": lambda t: (t / "pkg" / "link.py").symlink_to("__init__.py"),
    }
    seen = {original}
    for index, (what, change) in enumerate(changes.items()):
        copy = shutil.copytree(tree, tmp_path / f"changed-{index}")
        change(copy)
        digest = tree_digest(copy)
        assert digest not in seen, f"{what} did not change the digest"
        seen.add(digest)


def test_the_interpreter_digest_follows_its_binaries_bytes(tmp_path: Path) -> None:
    python = tmp_path / "python3.11"
    python.write_bytes(b"one interpreter")
    first = binaries_digest((str(python),))
    python.write_bytes(b"another build")
    assert binaries_digest((str(python),)) != first
    link = tmp_path / "python3"
    link.symlink_to(python)
    assert binaries_digest((str(link),)) == binaries_digest((str(python),)), "resolved: a link is its target"
    elsewhere = tmp_path / "checkout2" / "python3.11"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(python.read_bytes())
    assert binaries_digest((str(elsewhere),)) == binaries_digest((str(python),)), "the same bytes elsewhere"


def test_a_record_is_used_only_for_exactly_the_facts_it_names(tmp_path: Path) -> None:
    store = ProofStore(tmp_path / "proofs")
    made: list[int] = []

    def prove() -> dict[str, int]:
        made.append(1)
        return {"checked": 267}

    assert store.reuse_or_make("verify", FACTS, prove) == ({"checked": 267}, None)
    result, reused = store.reuse_or_make("verify", FACTS, prove)
    assert result == {"checked": 267} and reused is not None and len(made) == 1
    assert reused["key"] == ProofStore.key("verify", FACTS) and "on these exact bytes" in reuse_note(reused)

    for changed in ({**FACTS, "site": "d" * 64}, {**FACTS, "interpreter": "emulated b"}, {**FACTS, "prover": "e"}):
        assert store.find("verify", changed) is None
    assert store.find("trace", FACTS) is None, "a verify record is no trace"

    # A record copied under another key (or edited to name other inputs) vouches for nothing.
    other = {**FACTS, "site": "f" * 64}
    record = tmp_path / "proofs" / f"verify-{ProofStore.key('verify', FACTS)}.json"
    shutil.copyfile(record, tmp_path / "proofs" / f"verify-{ProofStore.key('verify', other)}.json")
    assert store.find("verify", other) is None
    body = json.loads(record.read_text())
    record.write_text(json.dumps({**body, "facts": other}))
    assert store.find("verify", FACTS) is None
    record.write_text("{not json")
    assert store.find("verify", FACTS) is None

    assert ProofStore(tmp_path / "proofs", enabled=False).reuse_or_make("verify", FACTS, prove)[1] is None
    assert len(made) == 2, "--fresh-proofs makes the proof again"


def test_a_record_not_sealed_on_this_machine_vouches_for_nothing(tmp_path: Path) -> None:
    """A forged pass in a cache restored from elsewhere (right name, right facts) is not used: the proof is made."""
    store = ProofStore(tmp_path / "proofs")
    store.record("verify", FACTS, {"checked": 267})
    record = store.root / f"verify-{ProofStore.key('verify', FACTS)}.json"
    genuine = json.loads(record.read_text())
    assert store.find("verify", FACTS) is not None
    for forged in ({k: v for k, v in genuine.items() if k != "seal"}, {**genuine, "seal": "0" * 64},
                   {**genuine, "result": {"checked": 1}}):  # fmt: skip
        record.write_text(json.dumps(forged))
        assert store.find("verify", FACTS) is None, forged
        made, reused = store.reuse_or_make("verify", FACTS, lambda: {"checked": 267})
        assert reused is None and made == {"checked": 267}


def test_a_failing_proof_is_never_recorded(tmp_path: Path) -> None:
    store = ProofStore(tmp_path / "proofs")

    def fails() -> dict[str, int]:
        raise CheckFailedError("2 new import failures", "keep what they need")

    with pytest.raises(CheckFailedError):
        store.reuse_or_make("verify", FACTS, fails)
    assert store.find("verify", FACTS) is None and not list((tmp_path / "proofs").glob("*"))


def _proof_lines(lines: list[str]) -> dict[str, str]:
    return {line.split(":", 1)[0]: line for line in lines if line.startswith(("verify:", "trace:", "prove:"))}


def test_a_rebuild_of_the_same_bytes_reuses_each_proof_and_says_so_and_a_change_makes_it_again(
    ci_log: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, paths = make_project(tmp_path, [{"x": 2}, {"x": 3}])
    first = build_layer(config, paths)
    assert "reused" not in first["verify"] and "reused" not in first["import_trace"]

    def rebuild(name: str, reuse: bool = True, project_config=config) -> tuple[dict, dict[str, str]]:
        again = BuildPaths(build=tmp_path / name, cache=paths.cache)
        again.model_dir.mkdir(parents=True)
        again.model.write_bytes(paths.model.read_bytes())
        ci_log.clear()
        return build_layer(project_config, again, reuse_proofs=reuse), _proof_lines(ci_log.messages)

    data, lines = rebuild("again")
    assert data["layer"]["sha256"] == first["layer"]["sha256"]
    for step in ("verify", "trace", "prove"):
        assert "on these exact bytes, proof " in lines[step], lines[step]
    assert data["verify"]["reused"]["key"] and data["import_trace"]["reused"]["made"]
    assert data["bytecode"]["proof"]["same_answers"] and data["bytecode"]["proof"]["reused"]
    assert data["verify"]["failures"] == first["verify"]["failures"]
    assert data["import_trace"]["paths"] == first["import_trace"]["paths"]
    assert data["proofs"]["imports"].startswith("proven natively") and "reused: made" in data["proofs"]["imports"]

    fresh, lines = rebuild("fresh", reuse=False)
    assert not any("reused" in line for line in lines.values()) and "reused" not in fresh["verify"]

    # The handler answers differently: the same layer still imports (verify reused), the runs are made again.
    handler = tmp_path / "handler" / "app.py"
    source = handler.read_text()
    handler.write_text(
        source.replace('return {"value": demo.double(event["x"])}', 'return {"value": 1 + demo.double(event["x"])}')
    )
    assert handler.read_text() != source
    _, lines = rebuild("changed-handler")
    assert "reused" in lines["verify"] and "reused" not in lines["trace"] and "reused" not in lines["prove"]

    # Another event: the trace and the proof ran on other inputs.
    (tmp_path / "events" / "e9.json").write_text(json.dumps({"description": "", "event": {"x": 9}, "expect": {}}))
    _, lines = rebuild("more-events")
    assert "reused" not in lines["trace"] and "reused" not in lines["prove"]

    # Other pipeline code made them: every proof is made again.
    monkeypatch.setattr("ci.layer.build.prover_digest", lambda: "other code")
    _, lines = rebuild("other-code")
    assert not any("reused" in line for line in lines.values())


def test_a_failed_trace_is_made_again_not_reused(ci_log: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """The rule that breaks the handler fails the build; after build.keep fixes it, nothing failed was recorded."""
    config, paths = make_project(tmp_path, [{"x": 2}, {"lazy": True}])
    with pytest.raises(CheckFailedError):
        build_layer(config, paths)
    assert not list((paths.cache / "proofs").glob("trace-*")) and not list((paths.cache / "proofs").glob("prove-*"))
    with pytest.raises(CheckFailedError):
        build_layer(config, paths)  # fails again, in full: not answered from a record
    kept = load_config(tmp_path, overrides={"smoke": {"events": "events"}, "build": {"keep": ["demo/tests/*"]}})
    ci_log.clear()
    build_layer(kept, paths)
    assert "reused" not in _proof_lines(ci_log.messages)["trace"]
