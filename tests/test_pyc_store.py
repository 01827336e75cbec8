"""The checking interpreters' bytecode is shared by content across build directories, never by path alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ci.arch.interpreter import run_isolated, target_python
from ci.layer import bytecode
from ci.layer.verify import Runner, run_checks

PYTHON = target_python("3.11")
MTIME = 1_700_000_000  # wheels give their files fixed mtimes: two installs of one wheel agree


def tree(root: Path, answer: str = "1") -> Path:
    """A small site: a package importing a module, and a module using the standard library."""
    site = root / "python"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("from pkg.core import ANSWER\n")
    (site / "pkg" / "core.py").write_text(f"ANSWER = {answer}\n")
    (site / "tool.py").write_text("import json, decimal\nVALUE = json.dumps(str(decimal.Decimal('1.5')))\n")
    for path in site.rglob("*.py"):
        os.utime(path, (MTIME, MTIME))
    return site


def counted(store: bytecode.PycStore, roots: list[Path], code: str) -> tuple[bytecode.Run, str]:
    """Run `code` in the target interpreter with the store's prefix; the run's counts and its output."""
    with store.run(roots) as run:
        prelude = f"import sys; sys.pycache_prefix = {str(run.prefix)!r}; sys.dont_write_bytecode = False\n"
        done = run_isolated(PYTHON, [root.resolve() for root in roots], prelude + code)
        assert done.returncode == 0, done.stderr
    return run, done.stdout.strip()


def test_a_second_directory_reuses_every_module_and_the_store_holds_one_pyc_per_source(tmp_path: Path) -> None:
    store = bytecode.PycStore(tmp_path / "cache" / "pyc", "cpython-311")
    code = "import pkg, tool; print(pkg.ANSWER, tool.VALUE)"
    first, said = counted(store, [tree(tmp_path / "a")], code)
    assert said == '1 "1.5"'
    assert first.compiled > 3  # the three layer modules and the standard library modules they import
    entries = sorted(path.name for path in (store.directory / "by-source").iterdir())
    assert len(entries) == 3 and all(re.fullmatch(rf"[0-9a-f]{{64}}-{MTIME}\.[0-9a-f]{{64}}\.cpython-311\.pyc", name)
                                     for name in entries)  # fmt: skip

    for name in ("b", "c"):  # other build directories: other paths, the same sources
        again, said = counted(store, [tree(tmp_path / name)], code)
        assert said == '1 "1.5"'
        assert (again.reused, again.compiled) == (3, 0)
    assert sorted(path.name for path in (store.directory / "by-source").iterdir()) == entries
    assert not list((store.directory / "runs").iterdir())  # each run's prefix is gone with it
    assert not list(tmp_path.glob("*/python/**/__pycache__"))  # nothing written into the trees


def test_a_changed_source_with_the_same_size_and_mtime_never_gets_the_old_bytecode(tmp_path: Path) -> None:
    """Python's own check (mtime and size) would accept the old .pyc; the store is named by the bytes."""
    store = bytecode.PycStore(tmp_path / "pyc", "cpython-311")
    site = tree(tmp_path / "build")
    assert counted(store, [site], "import pkg; print(pkg.ANSWER)")[1] == "1"
    shutil.rmtree(site.parent)
    site = tree(tmp_path / "build", answer="2")  # same path, same size, same mtime, other bytes
    run, said = counted(store, [site], "import pkg; print(pkg.ANSWER)")
    assert said == "2" and run.compiled == 1


def test_verify_keeps_what_it_compiled_and_a_copy_elsewhere_compiles_nothing(tmp_path: Path) -> None:
    store = bytecode.for_target(tmp_path / "cache", "3.11")
    items = [("module", "pkg"), ("module", "tool")]
    outcomes = run_checks(Runner(PYTHON, store), tree(tmp_path / "a"), items, jobs=2)
    assert all(outcome.error is None for outcome in outcomes.values())
    site = tree(tmp_path / "b")
    run, said = counted(store, [site], "import pkg, tool; print(pkg.ANSWER)")
    assert said == "1" and run.reused == 3 and run.compiled == 0  # json and decimal too, from the first run


def test_a_prefix_left_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    store = bytecode.PycStore(tmp_path / "pyc", "cpython-311")
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan = store.directory / "runs" / f"{dead.stdout.strip()}-abc123"
    (orphan / "tmp").mkdir(parents=True)
    mine = store.directory / "runs" / f"{os.getpid()}-still-running"
    mine.mkdir()
    counted(store, [tree(tmp_path / "a")], "import pkg")
    assert not orphan.exists() and mine.exists()


def test_bytecode_not_sealed_here_never_runs(tmp_path: Path) -> None:
    """Other code under a layer module's or the standard library's entry name (a poisoned cache) is not offered."""
    store = bytecode.PycStore(tmp_path / "cache" / "pyc", "cpython-311")
    code = "import pkg, tool, twin_a, twin_b; print(pkg.ANSWER, tool.VALUE)"

    def twins(site: Path) -> Path:  # two sources with the same bytes and mtime: one entry serves both
        for name in ("twin_a.py", "twin_b.py"):
            (site / name).write_text("")
            os.utime(site / name, (MTIME, MTIME))
        return site

    assert counted(store, [twins(tree(tmp_path / "a"))], code)[1] == '1 "1.5"'
    evil = tmp_path / "evil.py"
    evil.write_text("print('poisoned'); raise SystemExit(0)\n")
    forged = tmp_path / "evil.pyc"
    compiled = run_isolated(PYTHON, [], f"import py_compile; py_compile.compile({str(evil)!r}, {str(forged)!r})")
    assert compiled.returncode == 0, compiled.stderr
    entries = [p for p in store.directory.rglob("*.pyc*") if "runs" not in p.parts]
    assert any("outside" in p.parts for p in entries) and any("by-source" in p.parts for p in entries)
    for entry in entries:  # same names, other bytes: what a writer of the restored cache can do
        entry.unlink()
        shutil.copyfile(forged, entry)
    run, said = counted(store, [twins(tree(tmp_path / "b"))], code)
    assert said == '1 "1.5"' and run.reused == 0 and run.compiled > 3
