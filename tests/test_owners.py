"""One answer to "which distribution put this file into the layer?" for the build, ABI, budget and smoke reports.

Real trees and real zips with *.dist-info folders as installers leave them; the reports' own
code is run on them where the copies this module replaced used to disagree.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from abi_fixtures import pe_header
from budget_fixtures import config_with, make_build
from config_fixtures import EXT, PYC_TAG, PYTHON, TARGET

from ci.abi import scan_tree
from ci.budget.compute import compute_budget, gather_inputs
from ci.config import load_config
from ci.site.owners import Owners, canonical, module_stem, top_level_entries
from ci.smoke.harness import import_trace

WIN_TAG = f"{TARGET.runtime.python_tag}-win_amd64"


def dist_info(
    site: str, folder: str, name: str | None = None, record: list[str] | None = None, top_level: list[str] | None = None
) -> dict[str, bytes]:
    """The files of one *.dist-info: METADATA (when `name`), RECORD and top_level.txt (when given)."""
    base = f"{site}/{folder}" if site else folder
    files = {}
    if name is not None:
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\nName: in the body, not a header\n"
        files[f"{base}/METADATA"] = metadata.encode()
    if record is not None:
        files[f"{base}/RECORD"] = "".join(f"{path},sha256=x,1\n" for path in record).encode()
    if top_level is not None:
        files[f"{base}/top_level.txt"] = "".join(f"{entry}\n" for entry in top_level).encode()
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def write_layer_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for rel, data in files.items():
            archive.writestr(rel, data)
    return path


# A layer with every kind of evidence, and who owns each file.
LAYER: dict[str, bytes] = {
    # RECORD lists these two; both also live in the namespace folder ns/ that the build map gives to nsb.
    "python/ns/a/__init__.py": b"",
    "python/ns/b/__init__.py": b"",
    **dist_info("python", "nsa-1.0.dist-info", "nsa", record=["ns/a/__init__.py"]),
    **dist_info("python", "nsb-1.0.dist-info", "nsb", record=["ns/b/__init__.py"]),
    # scikit-learn: RECORD names sklearn/ but not the bytecode compiled after the install.
    "python/sklearn/__init__.py": b"",
    f"python/sklearn/__pycache__/__init__.{PYC_TAG}.pyc": b"pyc",
    f"python/sklearn/_tree.{EXT}": b"elf",
    "python/scikit_learn.libs/libgomp-a34b3233.so.1.0.0": b"lib",
    **dist_info("python", "scikit_learn-1.3.2.dist-info", "scikit-learn", record=["sklearn/__init__.py"]),
    # python-dateutil: only top_level.txt says it owns dateutil/.
    "python/dateutil/parser.py": b"",
    **dist_info("python", "python_dateutil-2.9.0.dist-info", "python-dateutil", top_level=["dateutil"]),
    # A package folder `foo` whose vendored libraries sit in foo.libs/, from a project named otherwise.
    "python/foo/__init__.py": b"",
    "python/foo.libs/libbar.so": b"lib",
    **dist_info("python", "python_foo-2.0.dist-info", "python-foo", top_level=["foo"]),
    # Top-level modules: source, bytecode in __pycache__, a sourceless .pyc, an extension module.
    "python/six.py": b"",
    f"python/__pycache__/six.{PYC_TAG}.pyc": b"pyc",
    "python/threadpoolctl.pyc": b"pyc",
    f"python/_cffi_backend.{EXT}": b"elf",
    **dist_info("python", "six-1.17.0.dist-info", "six", top_level=["six"]),
    **dist_info("python", "threadpoolctl-3.8.0.dist-info", "threadpoolctl"),
    **dist_info("python", "cffi-1.17.0.dist-info", "cffi", top_level=["_cffi", "_cffi_backend"]),
    # The dist-info's folder name is not the project's name: METADATA's Name wins.
    "python/tinylib/__init__.py": b"",
    **dist_info("python", "tinylib-1.0.dist-info", "tiny-lib", record=["tinylib/__init__.py"]),
    # A dist-info vendored inside a package is that package's payload, not a distribution of the layer.
    "python/setuptools/_vendor/packaging/version.py": b"",
    **dist_info("python/setuptools/_vendor", "packaging-24.2.dist-info", "packaging", record=["packaging/version.py"]),
    **dist_info("python", "setuptools-75.0.dist-info", "setuptools", top_level=["setuptools"]),
    # Lambda's other site directory, with its own dist-info.
    f"python/lib/python{PYTHON}/site-packages/attr/__init__.py": b"",
    **dist_info(
        f"python/lib/python{PYTHON}/site-packages", "attrs-23.1.0.dist-info", "attrs", record=["attr/__init__.py"]
    ),
    # Nothing claims these.
    "python/loose/thing.dat": b"x",
    f"python/mystery.{EXT}": b"elf",
    "README.txt": b"outside every site",
}
BUILD_TOP_LEVEL = {"ns": "nsb", "dateutil": "python-dateutil"}

OWNERS = {
    "python/ns/a/__init__.py": "nsa",  # RECORD's exact path beats the build's folder map
    "python/ns/b/__init__.py": "nsb",
    "python/sklearn/__init__.py": "scikit-learn",
    f"python/sklearn/__pycache__/__init__.{PYC_TAG}.pyc": "scikit-learn",  # RECORD's first component
    f"python/sklearn/_tree.{EXT}": "scikit-learn",
    "python/scikit_learn.libs/libgomp-a34b3233.so.1.0.0": "scikit-learn",  # foo.libs -> the project foo
    "python/scikit_learn-1.3.2.dist-info/METADATA": "scikit-learn",
    "python/dateutil/parser.py": "python-dateutil",
    "python/foo/__init__.py": "python-foo",
    "python/foo.libs/libbar.so": "python-foo",  # foo.libs -> the owner of the package foo
    "python/six.py": "six",
    f"python/__pycache__/six.{PYC_TAG}.pyc": "six",
    "python/threadpoolctl.pyc": "threadpoolctl",  # sourceless module named after its project
    f"python/_cffi_backend.{EXT}": "cffi",  # top_level.txt names the module
    "python/tinylib/__init__.py": "tiny-lib",
    "python/tinylib-1.0.dist-info/METADATA": "tiny-lib",
    "python/setuptools/_vendor/packaging/version.py": "setuptools",
    "python/setuptools/_vendor/packaging-24.2.dist-info/METADATA": "setuptools",
    f"python/lib/python{PYTHON}/site-packages/attr/__init__.py": "attrs",
    "python/loose/thing.dat": None,
    f"python/mystery.{EXT}": None,
    "README.txt": None,
}


@pytest.fixture(scope="module")
def layer_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("layer"), LAYER)


def test_each_rung_of_evidence_in_order(layer_tree: Path) -> None:
    owners = Owners.of_tree(layer_tree, top_level=BUILD_TOP_LEVEL)
    assert {path: owners.distribution(path) for path in OWNERS} == OWNERS


def test_a_tree_a_zip_and_an_entry_list_give_the_same_answers(layer_tree: Path, tmp_path: Path) -> None:
    archive = write_layer_zip(tmp_path / "layer.zip", LAYER)
    from_tree = Owners.of_tree(layer_tree, top_level=BUILD_TOP_LEVEL)
    from_zip = Owners.of_zip(archive, top_level=BUILD_TOP_LEVEL)
    from_entries = Owners.of_entries(LAYER, LAYER.__getitem__, top_level=BUILD_TOP_LEVEL)
    for path in LAYER:
        assert from_tree.distribution(path) == from_zip.distribution(path) == from_entries.distribution(path), path
    assert [(d.name, d.version) for d in from_zip.dists] == [(d.name, d.version) for d in from_tree.dists]
    assert ("scikit-learn", "1.3.2") in [(d.name, d.version) for d in from_zip.dists]


def test_the_build_map_applies_to_python_only_and_yields_to_no_record(tmp_path: Path) -> None:
    owners = Owners(top_level={"pkg": "from-build", "pkg.py": "single"})
    assert owners.distribution("python/pkg/x.py") == "from-build"
    assert owners.distribution(f"python/__pycache__/pkg.{PYC_TAG}.pyc") == "single"
    assert owners.distribution(f"python/lib/python{PYTHON}/site-packages/pkg/x.py") is None
    # top_level.txt and RECORD say otherwise, but the build saw what each wheel unpacked.
    files = {"python/pkg/x.py": b"", **dist_info("python", "other-1.0.dist-info", "other", top_level=["pkg"])}
    tree = Owners.of_tree(write_tree(tmp_path, files), top_level={"pkg": "from-build"})
    assert tree.distribution("python/pkg/x.py") == "from-build"


def test_top_level_txt_beats_a_record_folder(tmp_path: Path) -> None:
    files = {
        "python/shared/x.py": b"",
        **dist_info("python", "declares-1.0.dist-info", "declares", top_level=["shared"]),
        **dist_info("python", "aaa_lists-1.0.dist-info", "aaa-lists", record=["shared/other.py"]),
    }
    owners = Owners.of_tree(write_tree(tmp_path, files))
    assert owners.distribution("python/shared/x.py") == "declares"
    assert owners.distribution("python/shared/other.py") == "aaa-lists"  # but its exact RECORD line wins


def test_without_evidence_there_is_no_owner_but_a_name_to_show(layer_tree: Path) -> None:
    owners = Owners.of_tree(layer_tree)
    assert owners.guess("python/loose/thing.dat") == "loose"
    assert owners.guess(f"python/mystery.{EXT}") == "mystery"
    assert owners.guess("python/unknown.libs/libx.so") == "unknown"
    assert owners.guess(f"python/__pycache__/gone.{PYC_TAG}.pyc") == "gone"
    assert owners.guess("README.txt") is None


def test_a_bare_site_directory_is_its_own_site(tmp_path: Path) -> None:
    files = {"pkg/mod.py": b"", **dist_info("", "pkg-1.0.dist-info", "Pkg", record=["pkg/mod.py"]), "lone/x": b""}
    owners = Owners.of_tree(write_tree(tmp_path, files))
    assert owners.distribution("pkg/mod.py") == "Pkg"
    assert owners.distribution(f"pkg/__pycache__/mod.{PYC_TAG}.pyc") == "Pkg"
    assert (owners.distribution("lone/x"), owners.guess("lone/x")) == (None, "lone")


def test_the_builds_install_record_and_its_completed_top_level() -> None:
    owners = Owners.of_installed([("six", ["six.py", "six-1.17.0.dist-info/METADATA"]), ("demo", ["demo/a.py"])])
    assert owners.top_level == {"six.py": "six", "six-1.17.0.dist-info": "six", "demo": "demo"}
    completed = owners.completed_top_level(["__pycache__", "demo", "six.pyc", "stray"])
    assert completed == {"demo": "demo", "six-1.17.0.dist-info": "six", "six.py": "six", "six.pyc": "six"}
    assert owners.distribution(f"python/__pycache__/six.{PYC_TAG}.pyc") == "six"
    assert top_level_entries(["b/x.py", "a.py", "b/y.py"]) == ["a.py", "b"]


def test_names_and_stems() -> None:
    assert canonical("Scikit_Learn") == canonical("scikit.learn") == "scikit-learn"
    stems = ["six.py", "six.pyc", f"_x.{EXT}", "_y.abi3.so", f"_z.{WIN_TAG}.pyd", "numpy.libs", "libq.so.1"]
    assert [module_stem(name) for name in stems] == ["six", "six", "_x", "_y", "_z", "numpy", "libq.so.1"]


# Where the copies this module replaced disagreed, each report now gives the better answer.


def test_abi_names_the_project_of_an_unrecorded_file_in_a_recorded_folder(tmp_path: Path) -> None:
    # The ABI check used to fall back to the folder name ("sklearn") for a file not in RECORD.
    files = {
        "python/sklearn/helper.dll": pe_header(),
        f"python/mystery.{WIN_TAG}.pyd": pe_header(),
        **dist_info("python", "scikit_learn-1.3.2.dist-info", "scikit-learn", record=["sklearn/__init__.py"]),
    }
    violations = scan_tree(write_tree(tmp_path, files), load_config().target).violations
    assert {v.path: v.distribution for v in violations} == {
        "python/sklearn/helper.dll": "scikit-learn",
        f"python/mystery.{WIN_TAG}.pyd": "mystery",  # was the whole file name
    }


def test_budget_without_a_build_report_credits_sourceless_and_vendored_files(tmp_path: Path) -> None:
    # The budget used to leave a sourceless six.pyc "(unattributed)" when no build report named it.
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n\n"
    layer: dict[str, bytes | int] = {
        "python/six.pyc": 300,
        "python/six-1.17.0.dist-info/METADATA": metadata,
        "python/scipy/__init__.py": 100,
        "python/scipy.libs/libopenblas.so": 1_000,
        "python/scipy-1.16.3.dist-info/METADATA": 50,  # unreadable METADATA: the folder name stands in
    }
    budget = compute_budget(gather_inputs(config_with(), make_build(tmp_path, layer=layer, report=None)))
    groups = {g.name: (g.files, g.unzipped_bytes, g.version) for g in budget.distributions}
    assert groups == {"scipy": (3, 1_150, "1.16.3"), "six": (2, 300 + len(metadata), "1.17.0")}


def test_smoke_trace_credits_top_level_bytecode_and_vendored_libraries(tmp_path: Path) -> None:
    # The import trace used to report "__pycache__" and, without a build report, "numpy.libs"
    # as distributions of their own.
    files = {
        "python/six.py": b"s" * 10,
        f"python/__pycache__/six.{PYC_TAG}.pyc": b"p" * 20,
        **dist_info("python", "six-1.17.0.dist-info", "six", top_level=["six"]),
        "python/numpy/__init__.py": b"n" * 30,
        "python/numpy.libs/libopenblas.so": b"l" * 40,
        **dist_info("python", "numpy-1.26.4.dist-info", "numpy"),
    }
    root = write_tree(tmp_path / "opt", files)
    traced = [str(root / f"python/__pycache__/six.{PYC_TAG}.pyc"), str(root / "python/numpy.libs/libopenblas.so")]
    trace = import_trace(traced, root, None)
    assert set(trace["distributions"]) == {"six", "numpy"}
    assert trace["distributions"]["six"]["imported_bytes"] == 20
    assert trace["distributions"]["numpy"]["imported_bytes"] == 40
    with_report = import_trace(traced, root, {"six.py": "six", "numpy": "numpy", "numpy.libs": "numpy"})
    assert with_report["distributions"] == trace["distributions"]
    assert json.dumps(trace)  # the report stays JSON
