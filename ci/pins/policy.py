"""Which references a model pickle may contain, and which distribution each one comes from.

Unpickling imports every referenced module and may call every referenced callable, so the
scan accepts only the libraries the model is made of (scikit-learn, numpy, scipy, joblib and,
when the layer ships it, pandas) plus a handful of harmless builtins that numpy and the
standard pickler emit. Inside those libraries a few names are refused too: they load other
files, evaluate strings or run tests, which no fitted estimator needs.
"""

from __future__ import annotations

from dataclasses import dataclass

# Top-level module -> the distribution that installs it.
PACKAGES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "pandas": "pandas",
}

# Emitted by the standard pickler, numpy and pandas for ordinary data; none runs code from strings.
SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.object",
        "builtins.range",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",
        "datetime.date",
        "datetime.datetime",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
    }
)

# Inside the allowed libraries: modules and names that read files, evaluate code or fetch data.
DENIED_MODULE_PREFIXES: tuple[str, ...] = (
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "scipy._lib._testutils",
    "scipy.io",
    "joblib.externals",
    "pandas.io",
    "pandas.testing",
    "pandas._testing",
    "pandas.core.computation",
    "sklearn.utils._testing",
    "sklearn.datasets",
)
DENIED_NAMES: frozenset[str] = frozenset(
    {
        "load",
        "loads",
        "loadtxt",
        "fromfile",
        "genfromtxt",
        "read_pickle",
        "eval",
        "exec",
        "system",
        "popen",
        "getattr",
        "setattr",
        "__import__",
        "import_module",
        "open",
        "compile",
        "runstring",
        "exec_command",
        "Parallel",
        "delayed",
    }
)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def distribution_of(module: str) -> str | None:
    return PACKAGES.get(module.split(".", 1)[0])


def judge(module: str, name: str, allowed_packages: set[str]) -> Verdict:
    """Is `module.name` acceptable in a model pickle, given the distributions the runtime ships?"""
    path = f"{module}.{name}"
    top = module.split(".", 1)[0]
    if path in SAFE_GLOBALS:
        return Verdict(True)
    if top not in PACKAGES:
        return Verdict(False, f"{module} is not one of the model's libraries ({', '.join(sorted(PACKAGES))})")
    if PACKAGES[top] not in allowed_packages:
        return Verdict(False, f"{PACKAGES[top]} is not in the runtime lock, so the runtime cannot import {module}")
    for prefix in DENIED_MODULE_PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return Verdict(False, f"{prefix} reads files, evaluates code or runs tests; no fitted model needs it")
    last = name.rsplit(".", 1)[-1]
    if last in DENIED_NAMES or (top == "pandas" and last.startswith("read_")):
        return Verdict(False, f"`{last}` loads files or evaluates code; no fitted model needs it")
    return Verdict(True)
