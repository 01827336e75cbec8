"""Runs INSIDE the function's process (stdlib only): Lambda's bootstrap.py (awslambdaric on the handler) plus what
Lambda gives for free: read-only package directories (an audit hook raises EROFS, as root ignores chmod, and records
the path), the import trace (at exit and on a TRACE_PREFIX request id), and SnapStart's hooks, observed."""

import atexit
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TRACE_PREFIX = "smoke-trace-"

# Audit events that change the file system, and the positions of their path arguments.
_PATH_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.utime"), (0,)),
    **dict.fromkeys(("os.setxattr", "os.removexattr", "shutil.rmtree", "shutil.make_archive"), (0,)),
    **dict.fromkeys(("os.link", "os.symlink", "shutil.copyfile", "shutil.copymode", "shutil.copystat"), (1,)),
    **dict.fromkeys(("shutil.copytree", "shutil.unpack_archive"), (1,)),
    **dict.fromkeys(("os.rename", "shutil.move"), (0, 1)),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Lambda's /tmp is writable, as are the character devices every process writes to.
_ALWAYS_WRITABLE = ("/tmp", "/dev", "/proc")  # noqa: S108  (Lambda's own paths)


def _is_write_open(args: tuple[Any, ...]) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str) and any(ch in mode for ch in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def main(settings: dict[str, str]) -> None:
    writable = (os.path.realpath(settings["writable"]), *_ALWAYS_WRITABLE)
    # The package directories may themselves sit below a writable root (a test's /tmp/...).
    read_only = tuple(os.path.realpath(path) for path in settings["read_only"].split(os.pathsep))
    control = Path(settings["control"])
    violations_fd = os.open(control / "writes.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    trace_fd = os.open(control / "trace.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    hooks_fd = os.open(control / "hooks.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    seen: set[tuple[str, str]] = set()

    def refuse(event: str, raw: Any) -> None:
        if isinstance(raw, int) or raw is None:
            return  # a file descriptor: it was opened (and judged) before
        try:
            path = os.path.realpath(os.fsdecode(raw))
        except (TypeError, ValueError):
            return
        if _under(path, writable) and not _under(path, read_only):
            return
        # The import system's bytecode cache fails quietly on Lambda too: refused, not a finding.
        if "/__pycache__" not in path and (event, path) not in seen:
            seen.add((event, path))
            os.write(violations_fd, (json.dumps({"event": event, "path": path}) + "\n").encode())
        raise OSError(errno.EROFS, "Read-only file system", path)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            if args and _is_write_open(args):
                refuse(event, args[0])
            return
        for position in _PATH_ARGS.get(event, ()):
            if position < len(args):
                refuse(event, args[position])

    def write_trace() -> None:
        files: set[str] = set()
        for module in list(sys.modules.values()):
            for attribute in ("__file__", "__cached__"):
                name = getattr(module, attribute, None)
                if isinstance(name, str) and Path(name).is_file():
                    files.add(os.path.realpath(name))
        with Path("/proc/self/maps").open() as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and ".so" in parts[5]:
                    files.add(os.path.realpath(parts[5].strip()))
        data = json.dumps({"modules": len(sys.modules), "files": sorted(files)}).encode()
        os.ftruncate(trace_fd, 0)
        os.pwrite(trace_fd, data, 0)

    sys.addaudithook(hook)
    atexit.register(write_trace)

    from awslambdaric import bootstrap as ric

    original = ric.handle_event_request

    def handle_event_request(client: Any, request_handler: Any, invoke_id: str, *rest: Any) -> None:
        if invoke_id.startswith(TRACE_PREFIX):
            write_trace()
            client.post_invocation_result(invoke_id, b'{"trace": "written"}', "application/json")
            return
        original(client, request_handler, invoke_id, *rest)

    ric.handle_event_request = handle_event_request
    _observe_hooks(hooks_fd)
    ric.run(os.environ["LAMBDA_TASK_ROOT"], os.environ["_HANDLER"], os.environ["AWS_LAMBDA_RUNTIME_API"])


def _observe_hooks(hooks_fd: int) -> None:
    """Wrap awslambdaric's hook runners: one JSON line per phase (hooks registered, start, end, error)."""
    from awslambdaric import lambda_runtime_hooks_runner as runner
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    def observed(phase: str, run: Any, registry: Any) -> Any:
        def wrapper() -> None:
            record: dict[str, Any] = {"phase": phase, "hooks": len(registry()), "started": time.monotonic()}
            try:
                run()
            except BaseException as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                record["ended"] = time.monotonic()
                os.write(hooks_fd, (json.dumps(record) + "\n").encode())

        return wrapper

    runner.run_before_snapshot = observed("before_snapshot", runner.run_before_snapshot, get_before_snapshot)
    runner.run_after_restore = observed("after_restore", runner.run_after_restore, get_after_restore)
