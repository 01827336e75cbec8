"""The strip rule on real ELF files built here with gcc: smaller, still loading, *.libs untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sysconfig
from pathlib import Path

import pytest

from ci.arch.interpreter import run_isolated, target_python
from ci.layer.build import dlopen_check, strip_tree
from tests.config_fixtures import TARGET

PYTHON = target_python(TARGET.runtime.python)
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")

MODULE_C = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "42"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tiny", NULL, -1, methods};
PyMODINIT_FUNC PyInit_tiny(void) { return PyModule_Create(&module); }
"""


def gcc(source: str, output: Path, *flags: str) -> None:
    c_file = output.with_suffix(".c")
    c_file.write_text(source)
    include = sysconfig.get_paths()["include"]
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", f"-I{include}", *flags, "-o", str(output), str(c_file)],
                   check=True)  # fmt: skip
    c_file.unlink()


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    root = tmp_path / "python"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    gcc(MODULE_C, root / "pkg" / f"tiny{SUFFIX}")
    (root / "pkg.libs").mkdir()
    gcc("int vendored(void) { return 7; }", root / "pkg.libs" / "libvendored-1a2b3c.so.1")
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def imports_tiny(site: Path) -> bool:
    run = run_isolated(PYTHON, [site], "import pkg.tiny; assert pkg.tiny.answer() == 42")
    return run.returncode == 0


def test_strips_extension_modules_which_still_import_and_never_touches_libs(site: Path, tmp_path: Path) -> None:
    module, vendored = site / "pkg" / f"tiny{SUFFIX}", site / "pkg.libs" / "libvendored-1a2b3c.so.1"
    size_before, vendored_digest = module.stat().st_size, digest(vendored)
    result = strip_tree(site, tmp_path / "cache", dlopen_check(PYTHON))
    assert result.paths == [f"pkg/tiny{SUFFIX}"]
    assert result.bytes == size_before - module.stat().st_size > 0
    assert not result.restored
    assert digest(vendored) == vendored_digest
    assert imports_tiny(site)
    assert b".debug_info" not in module.read_bytes()


def test_a_stripped_file_that_does_not_load_is_restored_byte_for_byte(site: Path, tmp_path: Path) -> None:
    module = site / "pkg" / f"tiny{SUFFIX}"
    original = digest(module)

    def refuses_everything(files: list[Path], site: Path) -> dict[Path, str]:
        return dict.fromkeys(files, "ELF load command address/offset not page-aligned")

    result = strip_tree(site, tmp_path / "cache", refuses_everything)
    assert result.files == 0 and result.bytes == 0
    assert result.restored == {f"pkg/tiny{SUFFIX}": "ELF load command address/offset not page-aligned"}
    assert digest(module) == original
    assert imports_tiny(site)


def test_the_real_load_check_names_a_file_the_loader_refuses(site: Path) -> None:
    broken = site / "pkg" / f"broken{SUFFIX}"
    broken.write_bytes((site / "pkg" / f"tiny{SUFFIX}").read_bytes()[:2000])  # ELF header, truncated body
    failures = dlopen_check(PYTHON)([broken, site / "pkg" / f"tiny{SUFFIX}"], site)
    assert list(failures) == [broken]  # the truncated file fails (here: SIGBUS), the good one after it loads
    assert failures[broken]


def test_warm_strip_reuses_the_cache(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    original = (site / "pkg" / f"tiny{SUFFIX}").read_bytes()
    strip_tree(site, cache, dlopen_check(PYTHON))
    cached = sorted(cache.glob("*.so"))
    assert len(cached) == 1
    fresh = tmp_path / "again" / "python"
    (fresh / "pkg").mkdir(parents=True)
    (fresh / "pkg" / "__init__.py").write_text("")
    (fresh / "pkg" / f"tiny{SUFFIX}").write_bytes(original)
    result = strip_tree(fresh, cache, dlopen_check(PYTHON))
    assert result.files == 1
    assert sorted(cache.glob("*.so")) == cached


def test_without_a_strip_tool_nothing_changes_and_the_report_says_why(site: Path, tmp_path: Path) -> None:
    module = site / "pkg" / f"tiny{SUFFIX}"
    original = digest(module)
    result = strip_tree(site, tmp_path / "cache", dlopen_check(PYTHON), strip_tool="no-such-strip")
    assert result.files == 0 and "not found" in result.failed["*"]
    assert digest(module) == original
