"""Asking a Python environment, in a child process, which referenced names exist in it.

Existence is checked by importing the (allowed, installed) module and walking the qualified
name with getattr: the libraries' own code runs, the pickle's never does. A child process
keeps those imports (scikit-learn takes a second or two) out of the CLI's own process.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass

from ci.errors import PipelineError

_PROBE = r"""
import importlib, importlib.metadata, json, sys
request = json.load(sys.stdin)
versions = {}
for dist in request["distributions"]:
    try:
        versions[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        versions[dist] = None
found = {}
for module, name in request["names"]:
    try:
        value = importlib.import_module(module)
    except Exception as exc:
        found[module + "." + name] = "cannot import %s: %s: %s" % (module, type(exc).__name__, exc)
        continue
    missing = None
    for part in name.split("."):
        if not hasattr(value, part):
            missing = "%s has no attribute %r" % (module, part)
            break
        value = getattr(value, part)
    found[module + "." + name] = missing
print(json.dumps({"versions": versions, "found": found}))
"""


@dataclass(frozen=True)
class ProbeResult:
    python: str
    versions: dict[str, str | None]  # distribution -> installed version (None: not installed)
    missing: dict[str, str]  # module.qualname -> why it cannot be resolved


def probe(names: list[tuple[str, str]], distributions: list[str], python: str = sys.executable) -> ProbeResult:
    """Which of `names` (module, qualname) exist in `python`'s environment, and its versions."""
    return _probe(tuple(sorted(set(names))), tuple(sorted(set(distributions))), python)


@functools.lru_cache(maxsize=32)
def _probe(names: tuple[tuple[str, str], ...], distributions: tuple[str, ...], python: str) -> ProbeResult:
    """One child process per question: installed environments do not change during a run."""
    request = json.dumps({"names": names, "distributions": distributions})
    completed = subprocess.run(
        [python, "-I", "-B", "-c", _PROBE], input=request, capture_output=True, text=True, timeout=300, check=False
    )
    if completed.returncode != 0:
        raise PipelineError(
            f"probing {python} for the model's classes failed: {completed.stderr.strip()[-800:]}",
            "check that the environment imports (make venv)",
        )
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    return ProbeResult(
        python=python,
        versions=data["versions"],
        missing={path: why for path, why in data["found"].items() if why},
    )
