"""run_smoke: the built zips, run the way Lambda runs them, judged event by event.

Lay out, serve the Runtime API, start awslambdaric in an isolated target Python, send the events, collect the
trace and peak RSS, and turn all that into failures that name their cause.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.arch.interpreter import NATIVE, TargetInterpreter, find_interpreter
from ci.config import Config
from ci.paths import BuildPaths
from ci.pins.guard import model_precondition
from ci.reports import sha256_file
from ci.runtime_view import ensure_runtime_dir
from ci.smoke import process as proc
from ci.smoke import snapstart
from ci.smoke.bootstrap import TRACE_PREFIX
from ci.smoke.events import SmokeEvent, TrainingAnswers, coverage, judge, load_events, read_answers, version_drift
from ci.smoke.layout import SmokeLayout, make_writable, prepare_layout
from ci.smoke.runtime_api import Invocation, Outcome, RuntimeApi
from ci.smoke.trace import import_trace

TRACE_TIMEOUT_S = 30.0
# Under user-mode emulation the target's code runs this many times slower, at most (measured: ~20x for
# importing scikit-learn): the harness waits that much longer, and judges no time or memory limit.
EMULATION_SLOWDOWN = 40.0


@dataclass
class SmokeResult:
    passed: bool
    failures: list[str]
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """What one smoke run has seen so far."""

    config: Config
    layout: SmokeLayout
    api: RuntimeApi
    process: Any
    answers: TrainingAnswers | None
    failures: list[str] = field(default_factory=list)
    alive: bool = True
    slowdown: float = 1.0  # EMULATION_SLOWDOWN when emulated: waits stretch, limits are not judged

    def running(self) -> bool:
        return self.process.poll() is None

    def invoke(self, body: bytes, request_id: str | None = None) -> Outcome | str:
        """The outcome of one invocation, or why there is none."""
        timeout_s = float(self.config.function.timeout_s) * self.slowdown
        request_id = request_id or str(uuid.uuid4())
        self.api.submit(Invocation(request_id, body, timeout_s, proc.function_arn(self.config)))
        outcome = self.api.wait_outcome(request_id, timeout_s, self.running)
        if outcome is not None:
            return outcome
        self.alive = False
        if not self.running():
            return (
                f"Runtime.ExitError: the function's process exited (code {self.process.returncode}) during the"
                f" invocation:\n{_log_tail(self.layout)}"
            )
        return f"invocation took longer than the function's timeout (function.timeout_s = {timeout_s:g} s)"


def _error_text(outcome: Outcome) -> str:
    try:
        error = outcome.json()
    except ValueError:
        return outcome.body.decode("utf-8", "replace")[:500]
    return f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"


def _invoke_event(run: _Run, event: SmokeEvent) -> dict[str, Any]:
    result: dict[str, Any] = {"event": event.name, "description": event.description, "expected_status": event.status}
    outcome = run.invoke(json.dumps(event.event).encode())
    problem: str | None
    if isinstance(outcome, str):
        problem = outcome
    else:
        result["duration_ms"] = round(outcome.duration_s * 1000, 3)
        if outcome.kind == "error":
            problem = _error_text(outcome)
            result["error"] = problem
        else:
            try:
                response = outcome.json()
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
        named = [event for event in events if event.name == chosen]
        if named:
            return named[0]
        warnings.append(f"smoke.warm_event = {chosen!r} is not one of these events: timing another one instead")
    good = [event for event in events if event.status == 200]
    for candidates in ([e for e in good if not e.is_http], good):
        if candidates:
            return candidates[0]
    return None


def _warm(run: _Run, event: SmokeEvent, count: int) -> dict[str, Any]:
    durations = []
    for _ in range(count):
        if not run.alive:
            break
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


def _init(run: _Run, started: float) -> dict[str, Any]:
    limit = run.config.smoke.init_limit_s
    state = run.api.wait_init(limit * run.slowdown, run.running)
    if state == "snapshot":  # SnapStart: init and the before-snapshot hooks ran; the client waits for its restore
        assert run.api.state.snapshot_at is not None
        init: dict[str, Any] = {"state": state, "duration_s": round(run.api.state.snapshot_at - started, 3)}
        init["snapstart"], failures = snapstart.restore(
            run.api, run.layout.control, started, limit * run.slowdown, run.running
        )
        run.failures += failures
        run.alive = init["snapstart"]["state"] == "ready"
        return init
    if state == "ready":
        assert run.api.state.first_next is not None
        return {"state": state, "duration_s": round(run.api.state.first_next - started, 3)}
    run.alive = False
    if state == "error":
        # Give the client a moment to exit so its atexit import trace is written.
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.process.wait(timeout=3)
        error = run.api.state.init_error or {}
        error_type = error.get("errorType") or run.api.state.init_error_type or "Runtime.Unknown"
        run.failures.append(f"init error {error_type}: {error.get('errorMessage', '')}")
        return {"state": state, "error": error}
    if state == "exited":
        log_tail = _log_tail(run.layout)
        run.failures.append(f"the function's process exited during init (code {run.process.returncode}):\n{log_tail}")
        return {"state": state}
    run.failures.append(f"init took longer than {limit * run.slowdown:g} s (Lambda's init limit, smoke.init_limit_s)")
    return {"state": state}


def _log_tail(layout: SmokeLayout, lines: int = 20) -> str:
    log = layout.control / "function.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _lambda_path(layout: SmokeLayout, path: str) -> str:
    """Where a path of the layout is on Lambda, to make findings read like Lambda's."""
    for local, remote in ((layout.opt, "/opt"), (layout.task, "/var/task"), (layout.runtime, "/var/runtime")):
        root = str(local.resolve())
        if path == root or path.startswith(root + "/"):
            return remote + path[len(root) :]
    return path


def _writes(run: _Run) -> list[dict[str, str]]:
    log = run.layout.control / "writes.jsonl"
    found = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    for write in found:
        write["lambda_path"] = _lambda_path(run.layout, write["path"])
        run.failures.append(
            f"write outside the writable directory: {write['lambda_path']} ({write['path']}, {write['event']}); "
            "on Lambda only /tmp is writable"
        )
    return found


def _trace(run: _Run, paths: BuildPaths) -> dict[str, Any] | None:
    if run.alive:
        run.invoke(b"{}", request_id=TRACE_PREFIX + uuid.uuid4().hex)
    trace_file = run.layout.control / "trace.json"
    if not trace_file.is_file() or not trace_file.stat().st_size:
        return None
    traced = json.loads(trace_file.read_text())
    top_level = None
    build_report = paths.report("build")
    if build_report.is_file():
        top_level = json.loads(build_report.read_text()).get("top_level")
    trace = import_trace(traced["files"], run.layout.opt, top_level)
    trace["modules"] = traced["modules"]
    return trace


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
    """Run the artifacts under awslambdaric against a local Runtime API; see the module docstring.

    `manifest`: the model.json whose answers the runtime must reproduce (default: next to the model);
    `judge_numbers` False judges shapes, statuses and errors only (a rollback's check, see events.judge)."""
    interpreter = find_interpreter(config.target, paths.cache)
    if interpreter.python is None:
        return unavailable(config, interpreter)
    committed = config.smoke.events
    events = load_events(events_dir or committed)
    # The function unpickles the model at init: refuse it as `ci pins` would, before any process starts,
    # and load it only under the digest of the bytes scanned.
    model_sha256 = model_precondition(config, model_path)
    manifest = manifest or model_path.with_name("model.json")
    answers = training_answers(config, manifest, model_sha256) if judge_numbers else None
    python = interpreter.python
    runtime = ensure_runtime_dir(config, paths)
    prepare_started = time.monotonic()
    layers = paths.unpacked_layers
    layout = prepare_layout(paths.build / "smoke", runtime, layer_zip, function_zip, model_path, layers)
    model = layout.model_dir / model_path.name
    warnings: list[str] = []
    warm_event = _warm_event(events, config.smoke.warm_event, warnings)
    report: dict[str, Any] = {
        "handler": config.function.handler,
        "runtime": config.target.runtime.name,
        "memory_mb": config.function.memory_mb,
        "timeout_s": config.function.timeout_s,
        "layout_s": round(time.monotonic() - prepare_started, 3),
        "warnings": warnings,
        "interpreter": interpreter.to_json(),
        "proofs": proofs(interpreter),
        # Deploy accepts only a run of every committed event (smoke.events), exactly as committed.
        **coverage(events, committed),
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
    with RuntimeApi() as api:
        env = proc.lambda_environment(config, layout, python, api.address, model, model_sha256)
        started = time.monotonic()
        process, _log = proc.start_function_process(config, layout, python, env)
        slowdown = 1.0 if interpreter.mode == NATIVE else EMULATION_SLOWDOWN
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
            report["peak_rss_bytes"] = proc.peak_rss_bytes(process.pid)
        finally:
            proc.stop(process)
            # Leave nothing read-only behind: a non-root CI user could not delete build/ otherwise.
            for directory in layout.read_only:
                make_writable(directory)
    report["writes_outside_tmp"] = _writes(run)
    report["import_trace"] = report["import_trace"] or _trace(run, paths)
    _judge_resources(run, report)
    report["log_tail"] = _log_tail(layout)
    report["failures"] = run.failures
    return SmokeResult(passed=not run.failures, failures=run.failures, report=report)


def training_answers(config: Config, manifest: Path, model_sha256: str) -> TrainingAnswers:
    """model.json's answers for this model, with how the layer's versions differ from training's (if they do)."""
    answers = read_answers(manifest, model_sha256)
    runtime = {"python": config.target.runtime.python}
    if config.lock.layer_lock.is_file():
        from ci.pins.guard import read_lock

        layer = read_lock(config.lock.layer_lock)
        runtime.update({name: pin.version for name in answers.versions if (pin := layer.get(name)) and pin.version})
    return dataclasses.replace(answers, drift=version_drift(answers, runtime))


def unavailable(config: Config, interpreter: TargetInterpreter) -> SmokeResult:
    """No interpreter of the target's machine here: nothing ran, and the report says which proofs are missing."""
    failure = f"smoke did not run: {interpreter.detail}"
    report = {
        "handler": config.function.handler,
        "runtime": config.target.runtime.name,
        "memory_mb": config.function.memory_mb,
        "timeout_s": config.function.timeout_s,
        "warnings": [],
        "interpreter": interpreter.to_json(),
        "proofs": proofs(interpreter),
        "partial": True,
        "why": "no interpreter of the target's machine",
        "events_run": [],
        "failures": [failure],
    }
    return SmokeResult(passed=False, failures=[failure], report=report)


def proofs(interpreter: TargetInterpreter) -> dict[str, str]:
    """What this run proves: the invocation (answers, errors, writes) and Lambda's limits (init time, memory).

    Timed under emulation, init and peak RSS are the emulator's, not the target's: not judged, and missing."""
    limits = interpreter.proof()
    if interpreter.python is not None and interpreter.mode != NATIVE:
        limits = (
            f"missing: init time and peak memory were measured under emulation ({interpreter.detail}), not on the "
            "target's machine; run `python -m ci smoke` on a host of that machine"
        )
    return {"invocation": interpreter.proof(), "limits": limits}


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
        factor = max(1.0, proc.FULL_VCPU_MB / memory_mb)
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
