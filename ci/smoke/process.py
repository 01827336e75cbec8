"""The function's process: the target Python, isolated, with Lambda's sys.path and environment.

Lambda starts `/var/lang/bin/python3.11 /var/runtime/bootstrap.py` with sys.path
[/var/task, /opt/python/lib/python3.11/site-packages, /opt/python, /var/runtime, stdlib] and a fixed
set of variables; here the same, with the directories of the smoke layout in their place.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import uuid
from pathlib import Path

from ci import runtime_view
from ci.config import Config
from ci.isolated import isolated_command, isolated_env
from ci.smoke import bootstrap
from ci.smoke.layout import SmokeLayout

# Lambda gives one full vCPU at 1,769 MB and CPU in proportion below that.
FULL_VCPU_MB = 1769


def lambda_sys_path(config: Config, layout: SmokeLayout) -> list[str]:
    places = {"task": layout.task, "opt": layout.opt, "runtime": layout.runtime, "lang": layout.root / "lang"}
    return [str(entry) for entry in runtime_view.lambda_sys_path(config.target.runtime, places)]


def function_arn(config: Config) -> str:
    return f"arn:aws:lambda:{config.deploy.region}:123456789012:function:{config.function.name}"


def lambda_environment(
    config: Config, layout: SmokeLayout, python: str, api_address: str, model: Path, model_sha256: str
) -> dict[str, str]:
    """The variables Lambda sets for a python3.x function (no credentials), plus the model's location."""
    name = config.function.name
    region = config.deploy.region
    lang = Path(python).resolve().parent.parent
    today = datetime.datetime.now(datetime.UTC)
    return isolated_env(
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
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
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
            "MODEL_PATH": str(model),
            "MODEL_SHA256": model_sha256,
        }
    )


def start_function_process(
    config: Config, layout: SmokeLayout, python: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start bootstrap.py under awslambdaric; returns the process and its combined log file."""
    settings = {
        "writable": str(layout.tmp),
        "read_only": os.pathsep.join(str(path) for path in layout.read_only),
        "violations": str(layout.control / "writes.jsonl"),
        "trace": str(layout.control / "trace.json"),
        "hooks": str(layout.control / "hooks.jsonl"),
    }
    source = str(Path(bootstrap.__file__).resolve())
    code = (
        f"namespace = {{'__name__': 'lambda_bootstrap'}}\n"
        f"exec(compile(open({source!r}).read(), {source!r}, 'exec'), namespace)\n"
        f"namespace['main']({settings!r})\n"
    )
    log = layout.control / "function.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            isolated_command(python, lambda_sys_path(config, layout), code),
            cwd=layout.task,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the process's peak resident set, what Lambda's "Max Memory Used" reports."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def stop(process: subprocess.Popen[bytes]) -> None:
    """The client polls forever: end it (and anything it started)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=5)
