"""run_smoke: the exact zips laid out as /opt, /var/task and /tmp, run under awslambdaric (against a local Runtime
API) in an isolated target Python with Lambda's sys.path and environment, judged event by event."""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import socket
import stat
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Self, TypeVar

from ci import runtime_view, unpacked_layers
from ci.arch.interpreter import NATIVE, TargetInterpreter, find_interpreter, isolated_command, isolated_env
from ci.config import Config
from ci.paths import BuildPaths
from ci.pins.check import read_lock, require_safe_model
from ci.reports import sha256_file
from ci.site.owners import Owners
from ci.site.rules import walk_files
from ci.smoke import bootstrap
from ci.smoke.events import SmokeEvent, TrainingAnswers, coverage, judge, load_events, read_answers
from ci.zipsafe import open_zip

# At most this much slower under user-mode emulation (docs/performance.md): waits stretch, limits are not judged.
EMULATION_SLOWDOWN = 40.0
FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB and CPU in proportion below that
ORDER = ("init", "before_snapshot", "snapshot", "restore", "after_restore", "invoke")  # SnapStart's phases
NOT_MEASURED = (
    "Lambda's restore latency (resuming the snapshot) cannot be measured off AWS: restore_s is the after-restore "
    "hooks plus the client's overhead here; see RestoreDuration in the function's REPORT log lines on Lambda"
)


class SmokeLayout(NamedTuple):
    """build/smoke/'s directories; tmp is the only writable one, control holds the harness's logs and records."""

    root: Path
    runtime: Path
    opt: Path
    task: Path
    model_dir: Path
    tmp: Path
    control: Path

    @property
    def read_only(self) -> list[Path]:
        return [self.opt, self.task, self.model_dir, self.runtime]


class SmokeResult(NamedTuple):
    passed: bool
    failures: list[str]
    report: dict[str, Any]


@dataclasses.dataclass
class _Run:
    config: Config
    layout: SmokeLayout
    api: "RuntimeApi"
    process: subprocess.Popen[bytes]
    answers: TrainingAnswers | None
    failures: list[str] = dataclasses.field(default_factory=list)
    alive: bool = True
    slowdown: float = 1.0  # EMULATION_SLOWDOWN when emulated: waits stretch, limits are not judged

    def running(self) -> bool:
        return self.process.poll() is None

    def invoke(self, body: bytes, request_id: str | None = None) -> "Outcome | str":
        request_id = request_id or str(uuid.uuid4())
        with self.api.changed:
            self.api.pending.append((request_id, body))
            self.api.changed.notify_all()
        outcome = self.api.wait(lambda: self.api.outcomes.pop(request_id, None), self.api.timeout_s, self.running)
        if isinstance(outcome, Outcome):
            return outcome
        self.alive = False
        if not self.running():
            return (
                f"Runtime.ExitError: the function's process exited (code {self.process.returncode}) during the"
                f" invocation:\n{_log_tail(self.layout)}"
            )
        return f"invocation took longer than the function's timeout (function.timeout_s = {self.api.timeout_s:g} s)"


def run_smoke(
    layer_zip: Path,
    function_zip: Path,
    model_path: Path,
    config: Config,
    paths: BuildPaths,
    events_dir: Path | None = None,
    manifest: Path | None = None,
    judge_numbers: bool = True,
) -> SmokeResult:
    """`manifest`: the model.json whose answers must be reproduced; `judge_numbers` False: a rollback's shape check."""
    interpreter = find_interpreter(config.target, paths.cache)
    if interpreter.python is None:
        return unavailable(config, interpreter)
    events = load_events(events_dir or config.smoke.events)
    # The function unpickles the model at init: refused as `ci pins` would, then loaded only under the scanned digest.
    model_sha256 = require_safe_model(model_path, config.lock.layer_lock)
    manifest = manifest or model_path.with_name("model.json")
    answers = training_answers(config, manifest, model_sha256) if judge_numbers else None
    runtime = runtime_view.ensure_runtime_dir(config, paths)
    prepare_started = time.monotonic()
    layout = prepare_layout(paths.build / "smoke", runtime, layer_zip, function_zip, model_path, paths.unpacked_layers)
    report = _report_head(config, interpreter)
    warm_event = _warm_event(events, config.smoke.warm_event, report["warnings"])
    report.update(
        {
            "layout_s": round(time.monotonic() - prepare_started, 3),
            # Deploy accepts only a run of every committed event (smoke.events), exactly as committed.
            **coverage(events, config.smoke.events),
            # The bytes judged here, so a reader (or deploy) can tie this result to what it uploads.
            "smoked_artifacts": {
                "layer.zip": sha256_file(layer_zip),
                "function.zip": sha256_file(function_zip),
                "model.joblib": model_sha256,
                **({"model.json": sha256_file(manifest)} if answers else {}),
            },
            "answers": (
                {"model_sha256": answers.model_sha256, "manifest": answers.manifest, "versions": answers.versions}
                if answers
                else "not judged: shapes, statuses and errors only"
            ),
        }
    )
    slowdown = 1.0 if interpreter.mode == NATIVE else EMULATION_SLOWDOWN
    arn = f"arn:aws:lambda:{config.deploy.region}:123456789012:function:{config.function.name}"
    with RuntimeApi(float(config.function.timeout_s) * slowdown, arn) as api:
        started = time.monotonic()
        process = start_function(config, layout, interpreter.python, api.address, model_path.name, model_sha256)
        run = _Run(config, layout, api, process, answers, slowdown=slowdown)
        try:
            report["init"] = _init(run, started)
            report["events"] = [_invoke_event(run, event) for event in events if run.alive]
            # The first request pays for lazy imports and first-touch of the model: Lambda's cold request.
            if report["events"] and "duration_ms" in report["events"][0]:
                report["first_invocation_ms"] = report["events"][0]["duration_ms"]
            # Latency of a wrong answer means nothing (and would repeat the failure N times).
            if warm_event and run.alive and all(r["passed"] for r in report["events"] if r["event"] == warm_event.name):
                report["warm"] = _warm(run, warm_event, config.smoke.warm_invocations)
            report["import_trace"] = _trace(run, paths)
            report["peak_rss_bytes"] = peak_rss_bytes(process.pid)
        finally:
            stop(process)
            # Leave nothing read-only behind: a non-root CI user could not delete build/ otherwise.
            set_writable(layout.read_only, True)
    report["writes_outside_tmp"] = _writes(run)
    report["import_trace"] = report["import_trace"] or _trace(run, paths)
    _judge_resources(run, report)
    report["log_tail"] = _log_tail(layout)
    report["failures"] = run.failures
    return SmokeResult(passed=not run.failures, failures=run.failures, report=report)


def _report_head(config: Config, interpreter: TargetInterpreter) -> dict[str, Any]:
    """The report's settings and proofs: under emulation, init time and peak RSS are the emulator's: not judged."""
    limits = interpreter.proof()
    if interpreter.python is not None and interpreter.mode != NATIVE:
        limits = (
            f"missing: init time and peak memory were measured under emulation ({interpreter.detail}), not on the "
            "target's machine; run `python -m ci smoke` on a host of that machine"
        )
    return {
        "handler": config.function.handler,
        "runtime": config.target.runtime.name,
        "memory_mb": config.function.memory_mb,
        "timeout_s": config.function.timeout_s,
        "warnings": [],
        "interpreter": interpreter.to_json(),
        "proofs": {"invocation": interpreter.proof(), "limits": limits},
    }


def unavailable(config: Config, interpreter: TargetInterpreter) -> SmokeResult:
    failure = f"smoke did not run: {interpreter.detail}"
    why = "no interpreter of the target's machine"
    report = _report_head(config, interpreter) | {"partial": True, "why": why, "events_run": [], "failures": [failure]}
    return SmokeResult(passed=False, failures=[failure], report=report)


def training_answers(config: Config, manifest: Path, model_sha256: str) -> TrainingAnswers:
    """model.json's answers for this model, with how the layer's versions differ from training's (if they do)."""
    answers = read_answers(manifest, model_sha256)
    trained = answers.versions
    runtime = {"python": config.target.runtime.python}
    if config.lock.layer_lock.is_file():
        layer = read_lock(config.lock.layer_lock)
        runtime.update({name: pin.version for name in trained if (pin := layer.get(name)) and pin.version})
    differ = [
        f"{name} {version} (training {trained[name]})"
        for name, version in sorted(runtime.items())
        if name in trained
        and trained[name] != version
        and not (name == "python" and trained[name].startswith(version + "."))
    ]
    if not differ:
        return answers
    drift = f"; the layer's versions differ from training's: {', '.join(differ)}"
    fix = " (retrain in an environment synced from training/requirements.txt, or relock)"
    return dataclasses.replace(answers, drift=drift + fix)


def prepare_layout(
    root: Path, runtime: Path, layer_zip: Path, function_zip: Path, model_path: Path, layers: Path
) -> SmokeLayout:
    """A fresh layout under root from the zips; /opt: hard links to the layer unpacked (and checked) under `layers`."""
    layout = SmokeLayout(root, runtime, *(root / name for name in ("opt", "task", "model", "tmp", "control")))
    if root.exists():
        set_writable([root], True)
        shutil.rmtree(root)
    for directory in (layout.task, layout.model_dir, layout.tmp, layout.control):
        directory.mkdir(parents=True)
    unpacked_layers.link_layer(layers, layer_zip, layout.opt)
    with open_zip(function_zip, "rebuild it with `python -m ci build`", check_data=False) as zipped:
        zipped.extract_all(layout.task)  # checks each entry's CRC
    shutil.copyfile(model_path, layout.model_dir / model_path.name)
    set_writable(layout.read_only, False)
    return layout


def set_writable(roots: list[Path], writable: bool) -> None:
    """a-w on everything below the roots, or u+w on their directories (to delete them; /opt's files are the cache's)."""
    for directory, _dirs, files in (walked for root in roots for walked in os.walk(root)):
        folder = Path(directory)
        if writable:
            folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
            continue
        for path in (*(folder / name for name in files), folder):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def start_function(
    config: Config, layout: SmokeLayout, python: str, api_address: str, model_name: str, model_sha256: str
) -> subprocess.Popen[bytes]:
    """bootstrap.py under awslambdaric with Lambda's sys.path and environment (no credentials), logging to control/."""
    name = config.function.name
    region = config.deploy.region
    lang = Path(python).resolve().parent.parent
    env = isolated_env(
        {
            "_HANDLER": config.function.handler,
            "LAMBDA_TASK_ROOT": str(layout.task),
            "LAMBDA_RUNTIME_DIR": str(layout.runtime),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.target.runtime.name}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.function.memory_mb),
            # SnapStart: awslambdaric runs the before-snapshot hooks and waits for /restore/next after init.
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if config.function.snapstart else "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_RUNTIME_API": api_address,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": f"{lang}/bin:/usr/local/bin:/usr/bin/:/bin:{layout.opt}/bin",
            "LD_LIBRARY_PATH": (
                f"{lang}/lib:/lib64:/usr/lib64:{layout.runtime}:{layout.runtime}/lib"
                f":{layout.task}:{layout.task}/lib:{layout.opt}/lib"
            ),
            # Lambda's /tmp: tempfile and friends land in the smoke layout's writable directory.
            "TMPDIR": str(layout.tmp),
            "MODEL_PATH": str(layout.model_dir / model_name),
            "MODEL_SHA256": model_sha256,
        }
    )
    settings = {
        "writable": str(layout.tmp),
        "read_only": os.pathsep.join(str(path) for path in layout.read_only),
        "control": str(layout.control),  # writes.jsonl, trace.json, hooks.jsonl
    }
    source = str(Path(bootstrap.__file__).resolve())
    code = (
        f"namespace = {{'__name__': 'lambda_bootstrap'}}\n"
        f"exec(compile(open({source!r}).read(), {source!r}, 'exec'), namespace)\n"
        f"namespace['main']({settings!r})\n"
    )
    places = {"task": layout.task, "opt": layout.opt, "runtime": layout.runtime, "lang": layout.root / "lang"}
    with (layout.control / "function.log").open("wb") as sink:
        return subprocess.Popen(
            isolated_command(python, runtime_view.lambda_sys_path(config.target.runtime, places), code),
            cwd=layout.task,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the process's peak resident set, what Lambda's "Max Memory Used" reports."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def stop(process: subprocess.Popen[bytes]) -> None:
    """The client polls forever: end it (and anything it started), with SIGKILL if SIGTERM is not enough."""
    for signal_number, wait_s in ((15, 3), (9, 5)):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal_number)
                process.wait(timeout=wait_s)
    process.wait(timeout=5)  # raises TimeoutExpired if not even SIGKILL ended it


def _init(run: _Run, started: float) -> dict[str, Any]:
    api, limit = run.api, run.config.smoke.init_limit_s * run.slowdown
    # "ready" (it asks for work), "snapshot" (SnapStart: it asks to be restored), "error", "exited" or "timeout"
    state = api.wait(
        lambda: _first_set(error=api.init_error, ready=api.first_next, snapshot=api.snapshot_at), limit, run.running
    )
    if state in ("snapshot", "ready"):
        done_at = api.snapshot_at if state == "snapshot" else api.first_next
        assert done_at is not None
        init: dict[str, Any] = {"state": state, "duration_s": round(done_at - started, 3)}
        if state == "snapshot":
            init["snapstart"] = _restore(run, started, limit)
            run.alive = init["snapstart"]["state"] == "ready"
        return init
    run.alive = False
    if state == "error":
        # Give the client a moment to exit so its atexit import trace is written.
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.process.wait(timeout=3)
        error = api.init_error or {}
        error_type = error.get("errorType") or "Runtime.Unknown"
        run.failures.append(f"init error {error_type}: {error.get('errorMessage', '')}")
        return {"state": state, "error": error}
    if state == "exited":
        code = run.process.returncode
        run.failures.append(f"the function's process exited during init (code {code}):\n{_log_tail(run.layout)}")
    else:
        run.failures.append(f"init took longer than {limit:g} s (Lambda's init limit, smoke.init_limit_s)")
    return {"state": state}


def _restore(run: _Run, started: float, wait_s: float) -> dict[str, Any]:
    """SnapStart: restore the snapshotted client and wait for it to ask for work; the report's section."""
    api = run.api
    api.note(restored_at=time.monotonic())  # answers GET /restore/next
    state = api.wait(lambda: _first_set(error=api.restore_error, ready=api.first_next), wait_s, run.running)
    hooks = {row["phase"]: row for row in _records(run.layout, "hooks.jsonl")}
    section: dict[str, Any] = {"state": state, "hooks": hooks, "restore_note": NOT_MEASURED}
    if state == "error":
        error = api.restore_error or {}
        run.failures.append(f"after-restore hook failed: {error.get('errorType', '')}: {error.get('errorMessage', '')}")
    elif state != "ready":
        run.failures.append(f"the restored function did not ask for work ({state}) within {wait_s:g} s")
    else:
        assert api.first_next is not None and api.restored_at is not None
        section["restore_s"] = round(api.first_next - api.restored_at, 3)
    times = {
        "init": started,
        "before_snapshot": (hooks.get("before_snapshot") or {}).get("started"),
        "snapshot": api.snapshot_at,
        "restore": api.restored_at,
        "after_restore": (hooks.get("after_restore") or {}).get("started"),
        "invoke": api.first_next,
    }
    section["phases_s"] = {name: None if at is None else round(at - started, 3) for name, at in times.items()}
    seen = {name: at for name, at in times.items() if at is not None}
    section["order"] = sorted(seen, key=seen.__getitem__)  # stable: a tie keeps ORDER's order
    if state == "ready":
        if section["order"] != list(ORDER):
            run.failures.append(f"SnapStart phases ran as {' -> '.join(section['order'])}, not {' -> '.join(ORDER)}")
        for phase in ("before_snapshot", "after_restore"):
            if (hooks.get(phase) or {}).get("hooks", 0) == 0:
                run.failures.append(
                    f"function.snapstart is on but the handler registered no {phase.replace('_', '-')} hook "
                    "(snapshot_restore_py.register_before_snapshot / register_after_restore)"
                )
    return section


def _invoke_event(run: _Run, event: SmokeEvent) -> dict[str, Any]:
    result: dict[str, Any] = {"event": event.name, "description": event.description, "expected_status": event.status}
    outcome = run.invoke(json.dumps(event.event).encode())
    problem: str | None
    if isinstance(outcome, str):
        problem = outcome
    else:
        result["duration_ms"] = round(outcome.duration_s * 1000, 3)
        if outcome.kind == "error":
            try:
                error = json.loads(outcome.body)
                problem = f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
            except ValueError:
                problem = outcome.body.decode("utf-8", "replace")[:500]
            result["error"] = problem
        else:
            try:
                response = json.loads(outcome.body)
            except ValueError:
                response = None
                problem = "the response is not JSON: " + outcome.body.decode("utf-8", "replace")[:300]
            else:
                problem = judge(event, response, run.answers)
            result["response"] = response
    result["passed"] = problem is None
    if problem:
        result["problem"] = problem
        run.failures.append(f"event {event.name}: {problem}")
    return result


def _warm_event(events: list[SmokeEvent], chosen: str | None, warnings: list[str]) -> SmokeEvent | None:
    """smoke.warm_event if set, else a single successful prediction, preferably a direct invocation."""
    if chosen:
        if named := [event for event in events if event.name == chosen]:
            return named[0]
        warnings.append(f"smoke.warm_event = {chosen!r} is not one of these events: timing another one instead")
    good = [event for event in events if event.status == 200]
    return next((event for event in good if not event.is_http), good[0] if good else None)


def _warm(run: _Run, event: SmokeEvent, count: int) -> dict[str, Any]:
    durations: list[float] = []
    while run.alive and len(durations) < count:
        result = _invoke_event(run, event)
        if not result["passed"]:
            break
        durations.append(result["duration_ms"])
    if not durations:
        return {"event": event.name, "invocations": 0}
    ordered = sorted(durations)
    return {
        "event": event.name,
        "invocations": len(durations),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))], 3),
        "max_ms": round(ordered[-1], 3),
        "durations_ms": durations,
    }


def _log_tail(layout: SmokeLayout, lines: int = 20) -> str:
    log = layout.control / "function.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _records(layout: SmokeLayout, name: str) -> list[dict[str, Any]]:
    log = layout.control / name
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def _writes(run: _Run) -> list[dict[str, str]]:
    layout = run.layout
    found = _records(layout, "writes.jsonl")
    for write in found:
        # Where the path is on Lambda, to make findings read like Lambda's.
        write["lambda_path"] = write["path"]
        for local, remote in ((layout.opt, "/opt"), (layout.task, "/var/task"), (layout.runtime, "/var/runtime")):
            root = str(local.resolve())
            if write["path"] == root or write["path"].startswith(root + "/"):
                write["lambda_path"] = remote + write["path"][len(root) :]
                break
        run.failures.append(
            f"write outside the writable directory: {write['lambda_path']} ({write['path']}, {write['event']}); "
            "on Lambda only /tmp is writable"
        )
    return found


def _trace(run: _Run, paths: BuildPaths) -> dict[str, Any] | None:
    if run.alive:
        run.invoke(b"{}", request_id=bootstrap.TRACE_PREFIX + uuid.uuid4().hex)
    trace_file = run.layout.control / "trace.json"
    if not trace_file.is_file() or not trace_file.stat().st_size:
        return None
    traced = json.loads(trace_file.read_text())
    build_report = paths.report("build")
    top_level = json.loads(build_report.read_text()).get("top_level") if build_report.is_file() else None
    return import_trace(traced["files"], run.layout.opt, top_level) | {"modules": traced["modules"]}


def import_trace(traced: list[str], layer_root: Path, top_level: dict[str, str] | None) -> dict[str, Any]:
    """The layer files traced, and per distribution imported vs shipped: what is shipped but never touched."""
    root = layer_root.resolve()
    shipped = {path.relative_to(root).as_posix(): path.stat().st_size for path in walk_files(root)}
    imported = {Path(path).relative_to(root).as_posix() for path in traced if Path(path).is_relative_to(root)}
    imported &= set(shipped)
    owners = Owners.of_tree(root, top_level=top_level)
    counts = ("imported_files", "imported_bytes", "shipped_files", "shipped_bytes")
    distributions: dict[str, dict[str, int]] = {}
    for relative, size in shipped.items():
        owner = owners.distribution(relative) or owners.guess(relative) or relative.split("/", 1)[0]
        entry = distributions.setdefault(owner, dict.fromkeys(counts, 0))
        entry["shipped_files"] += 1
        entry["shipped_bytes"] += size
        if relative in imported:
            entry["imported_files"] += 1
            entry["imported_bytes"] += size
    return {
        "files": sorted(imported),
        "imported_bytes": sum(shipped[relative] for relative in imported),
        "shipped_bytes": sum(shipped.values()),
        "distributions": dict(sorted(distributions.items())),
        "never_imported": sorted(name for name, entry in distributions.items() if entry["imported_files"] == 0),
    }


def _judge_resources(run: _Run, report: dict[str, Any]) -> None:
    if run.slowdown != 1.0:
        report["warnings"].append(
            "emulated: init time and peak RSS are the emulator's; Lambda's init and memory limits were not judged"
        )
        return
    memory_mb = run.config.function.memory_mb
    init = report.get("init", {})
    if "duration_s" in init:
        # Lambda gives a function memory_mb/1769 of a vCPU (init is single-threaded: no gain above one).
        factor = max(1.0, FULL_VCPU_MB / memory_mb)
        init["estimate_at_memory_s"] = round(init["duration_s"] * factor, 3)
        init["estimate_note"] = f"estimate: measured init x {factor:.2f} (one vCPU at 1769 MB, {memory_mb} MB here)"
        limit = run.config.smoke.init_limit_s
        if init["estimate_at_memory_s"] > limit:
            report["warnings"].append(
                f"estimated init at {memory_mb} MB ({init['estimate_at_memory_s']:.1f} s) is over Lambda's"
                f" {limit:g} s init limit: an estimate, but ship bytecode or raise function.memory_mb"
            )
    peak = report.get("peak_rss_bytes")
    if peak is not None and peak > memory_mb * 1024 * 1024:
        run.failures.append(
            f"peak RSS {peak / 2**20:.0f} MB is over the function's memory ({memory_mb} MB, function.memory_mb)"
        )


# A local Lambda Runtime API (2018-06-01), with SnapStart's restore routes, so the real awslambdaric runs unchanged.
PREFIX = "/2018-06-01/runtime"
Seen = TypeVar("Seen")


class Outcome(NamedTuple):
    kind: str  # "response" | "error"
    body: bytes
    duration_s: float


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "RuntimeApi"

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm and the client's delayed ACK add ~40 ms to every invocation.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002  (the base class's signature)
        return  # the harness reports; no access log on stderr

    def _reply(self, code: int, body: bytes = b'{"status": "OK"}', headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _hold(self, seen: Callable[[], Seen | None]) -> Seen | None:
        """Hold the long poll until `seen` gives something; None (closing the connection) when the server stops."""
        api = self.server
        found = api.wait(seen, math.inf, lambda: not api.stopping)
        if isinstance(found, str):
            self.close_connection = True
            return None
        return found

    def do_GET(self) -> None:
        api = self.server
        if self.path == f"{PREFIX}/restore/next":  # the snapshot point: answered once the harness restores
            api.note(snapshot_at=time.monotonic())
            if self._hold(lambda: api.restored_at) is not None:
                self._reply(200, b"{}")
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, b'{"errorType": "NotFound"}')
            return
        api.note(first_next=api.first_next or time.monotonic())
        invocation = self._hold(lambda: api.pending.pop(0) if api.pending else None)
        if invocation is None:
            return
        request_id, body = invocation
        now = time.time()
        api.in_flight[request_id] = time.monotonic()
        self._reply(
            200,
            body,
            {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((now + api.timeout_s) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(now):08x}-{request_id[-24:]:0>24};Sampled=0",
            },
        )

    def do_POST(self) -> None:
        api = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        phase = self.path.removeprefix(f"{PREFIX}/").removesuffix("/error")
        if phase in ("init", "restore") and self.path.endswith("/error"):
            try:
                error = json.loads(body or b"{}")
            except ValueError:
                error = None
            if not isinstance(error, dict):  # not a JSON object: its text is the message
                error = {"errorMessage": body.decode("utf-8", "replace")}
            if not error.get("errorType") and (header := self.headers.get("Lambda-Runtime-Function-Error-Type")):
                error["errorType"] = header
            api.note(**{f"{phase}_error": error})
            self._reply(202)
            return
        parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
        if len(parts) != 2 or parts[1] not in ("response", "error") or parts[0] not in api.in_flight:
            self._reply(400, b'{"errorType": "InvalidRequestID"}')
            return
        duration = time.monotonic() - api.in_flight.pop(parts[0])
        with api.changed:
            api.outcomes[parts[0]] = Outcome(parts[1], body, duration)
            api.changed.notify_all()
        self._reply(202)


class RuntimeApi(ThreadingHTTPServer):
    """The server on 127.0.0.1, on a free port, in a background thread, and what the client has told it so far."""

    daemon_threads = True

    def __init__(self, timeout_s: float, function_arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.timeout_s = timeout_s  # function.timeout_s, stretched under emulation
        self.function_arn = function_arn
        self.pending: list[tuple[str, bytes]] = []  # (request id, event) not handed out yet
        self.in_flight: dict[str, float] = {}  # request id -> time.monotonic() when /next handed it out
        self.outcomes: dict[str, Outcome] = {}
        self.first_next: float | None = None
        self.init_error: dict[str, Any] | None = None  # what the client posted; errorType from its header if missing
        self.snapshot_at: float | None = None  # GET /restore/next: init and the before-snapshot hooks are done
        self.restored_at: float | None = None  # the harness answered it: the environment is "restored"
        self.restore_error: dict[str, Any] | None = None
        self.stopping = False
        self.changed = threading.Condition()  # notified on every change
        self.address = f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self.serve_forever, name="runtime-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the harness ended the client: expected
            super().handle_error(request, client_address)

    def note(self, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.changed.notify_all()

    def wait(self, seen: Callable[[], Seen | None], timeout_s: float, still_running: Callable[[], bool]) -> Seen | str:
        """What `seen` reports once it reports something, else "exited" or "timeout"; woken by every change."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while (found := seen()) is None:
                if not still_running():
                    return "exited"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                self.changed.wait(min(left, 0.05))
            return found


def _first_set(**values: object) -> str | None:
    return next((name for name, value in values.items() if value is not None), None)
