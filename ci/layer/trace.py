"""What the handler really uses from the layer: the import trace of a run on the committed events, in the target
interpreter seeing only what Lambda's would; its answers prove a changed tree (bytecode, compact) equivalent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.arch.interpreter import run_isolated
from ci.errors import CheckFailedError
from ci.layer.verify import Runner
from ci.pins.check import require_safe_model
from ci.site.owners import BUILD_SITE, Owners

_TRACE = r"""
import importlib, json, os, sys
SITE = SITE_
opened = set()
def _audit(event, args):
    if event == "open" and args and isinstance(args[0], str):
        opened.add(args[0])
sys.addaudithook(_audit)
os.environ.update(ENV_)
module_name, function_name = HANDLER_.rsplit(".", 1)
handler = importlib.import_module(module_name)
results = []
class Context:
    function_name = "import-trace"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:import-trace"
    memory_limit_in_mb = 512
    aws_request_id = "import-trace"
    log_group_name = log_stream_name = "import-trace"
    def get_remaining_time_in_millis(self):
        return 60000
for event in EVENTS_:
    try:
        results.append(json.loads(json.dumps(getattr(handler, function_name)(event, Context()), default=repr)))
    except BaseException as exc:
        results.append({"raised": f"{type(exc).__name__}: {exc}"})
files = set()
for module in list(sys.modules.values()):
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        files.add(file)
modules = set(files)
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            files.add(parts[5].strip())
files |= opened
def inside(paths):
    out = set()
    for path in paths:
        real = os.path.realpath(path)
        if real.startswith(SITE + os.sep) and os.path.isfile(real):
            out.add(os.path.relpath(real, SITE))
    return sorted(out)
print("TRACE " + json.dumps({"modules": inside(modules), "files": inside(files), "results": results}))
"""


@dataclass
class ImportTrace:
    workload: str  # "events" (handler + model on every event) | "import-only" (no model)
    modules: list[str]  # files of imported modules, relative to the site
    files: list[str]  # everything used: modules, opened files, mapped shared objects
    results: list[Any] = field(default_factory=list)  # the handler's answer per event
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what the handler printed (its error lines name causes)

    def broken_answers(self) -> list[int]:
        """Events the handler answered with a 5xx or an exception: something it needs is missing."""
        return [index for index, result in enumerate(self.results) if _status(result) >= 500]

    def report(self, site: Path, top_level: dict[str, str]) -> dict[str, Any]:
        """build.json's import_trace: what was used, and each distribution's share (0 for one never imported)."""
        counts = {name: {"imported_files": 0, "imported_bytes": 0} for name in sorted(set(top_level.values()))}
        owners = Owners(top_level=top_level)
        used = [rel for rel in self.files if (site / rel).is_file()]
        for rel in used:
            owner = owners.distribution(f"{BUILD_SITE}/{rel}")
            if owner in counts:
                counts[owner]["imported_files"] += 1
                counts[owner]["imported_bytes"] += (site / rel).stat().st_size
        return {
            "workload": self.workload,
            "modules": len(self.modules),
            "files": len(self.files),
            "bytes": sum((site / rel).stat().st_size for rel in used),
            "distributions": counts,
            "warnings": self.warnings,
        }


def load_events(events_dir: Path) -> list[Any]:
    """The Lambda events of tests/events/*.json (each file: {"description", "event", "expect"})."""
    events = []
    for path in sorted(events_dir.glob("*.json")):  # none in a missing directory
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "event" in data:
            events.append(data["event"])
    return events


def trace_handler(
    runner: Runner,
    site: Path,
    function_root: Path,
    handler: str,
    events_dir: Path,
    model: Path | None,
    layer_lock: Path | None = None,
) -> ImportTrace:
    """What the handler used of the layer answering the events in the isolated interpreter."""
    warnings = []
    events: list[Any] = []
    env: dict[str, str] = {}
    if model is not None and model.is_file():
        # The scan `ci pins` runs comes first: this process unpickles the model once per event.
        digest = require_safe_model(model, layer_lock)
        events = load_events(events_dir)
        env = {"MODEL_PATH": str(model), "MODEL_SHA256": digest}
        if not events:
            warnings.append(f"no events in {events_dir}: the trace covers importing the handler only")
    else:
        warnings.append(
            f"no model at {model}: the trace covers importing the handler only (train first: python -m training)"
        )
    code = _TRACE.replace("SITE_", repr(str(site.resolve()))).replace("ENV_", repr(env))
    code = code.replace("HANDLER_", repr(handler)).replace("EVENTS_", repr(events))
    with runner.session([function_root, site]) as (sys_path, prelude):
        run = run_isolated(runner.python, sys_path, prelude + code, timeout=900)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("TRACE ")), None)
    if run.returncode != 0 or line is None:
        raise TraceError(
            f"the handler {handler} failed in the isolated interpreter with the layer"
            + (" and the runtime's packages" if runner.extra_paths else " alone"),
            run.stderr,
        )
    data = json.loads(line[len("TRACE ") :])
    return ImportTrace(
        workload="events" if events else "import-only",
        modules=data["modules"],
        files=data["files"],
        results=data["results"],
        warnings=warnings,
        log=[ln for ln in run.stdout.splitlines() if not ln.startswith("TRACE ")],
    )


class TraceError(CheckFailedError):
    """The handler could not run on the layer; `detail` holds its traceback or error log."""

    def __init__(self, problem: str, detail: str) -> None:
        tail = "\n".join(detail.strip().splitlines()[-12:])
        super().__init__(f"{problem}:\n{tail}", "keep what the error names with build.keep, or drop the rule")
        self.detail = detail


def _status(result: Any) -> int:
    if not isinstance(result, dict) or "raised" in result:
        return 599
    if "statusCode" in result:
        return int(result["statusCode"])
    error = result.get("error")
    return int(error.get("status", 500)) if isinstance(error, dict) else 200


def compare_results(before: ImportTrace, after: ImportTrace, what: str) -> None:
    """The handler must answer every event exactly as it did before `what` changed the tree."""
    diffs = [
        f"  event {index}: {json.dumps(old, sort_keys=True)[:200]} -> {json.dumps(new, sort_keys=True)[:200]}"
        for index, (old, new) in enumerate(zip(before.results, after.results, strict=True))
        if old != new
    ]
    if diffs:
        raise CheckFailedError(
            f"after {what} the handler answers {len(diffs)} event(s) differently:\n" + "\n".join(diffs[:5]),
            f"disable {what} in pipeline.toml [build] and report the module involved",
        )
