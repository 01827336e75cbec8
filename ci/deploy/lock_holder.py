"""Who holds the deploy lock, and whether that holder is a process on this machine that is gone.

A SIGKILLed deploy never releases its lock; on the same machine (host, boot id, pid namespace, pid, start
time) that is provable. Anything that cannot be read counts as alive.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def owner(command: str, commit: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Who is deploying, as a person reading the refusal needs it: the run, the actor, the machine."""
    run = environ.get("GITHUB_RUN_ID", "")
    repository = environ.get("GITHUB_REPOSITORY", "")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    return {
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process": process_identity(os.getpid()),
        "user": environ.get("GITHUB_ACTOR") or getpass.getuser(),
        "commit": commit,
        "github_run_id": run,
        "github_run_url": f"{server}/{repository}/actions/runs/{run}" if run and repository else "",
    }


def describe_owner(holder: Mapping[str, Any]) -> str:
    command, user, host = holder.get("command", "deploy"), holder.get("user", "?"), holder.get("host", "?")
    who = f"{command} by {user}@{host} pid {holder.get('pid', '?')}"
    if holder.get("github_run_url") or holder.get("github_run_id"):
        who += f" (run {holder.get('github_run_url') or holder.get('github_run_id')})"
    commit = str(holder.get("commit", ""))
    return who + (f" of commit {commit[:12]}" if commit else "")


def read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), "" if unknown."""
    stat = read_text(PROC / str(pid) / "stat")
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else ""


def process_identity(pid: int) -> dict[str, str]:
    try:
        namespace = str((PROC / "self" / "ns" / "pid").readlink())
    except OSError:
        namespace = ""
    return {
        "boot_id": read_text(PROC / "sys" / "kernel" / "random" / "boot_id"),
        "pid_namespace": namespace,
        "start_ticks": start_ticks(pid),
    }


def gone_from_this_machine(holder: Mapping[str, Any]) -> str | None:
    """Why the holder is provably dead (a sentence), or None if it may be alive or is not ours to judge."""
    recorded = holder.get("process")
    pid = holder.get("pid")
    if not isinstance(recorded, dict) or not isinstance(pid, int) or pid <= 0:
        return None
    here = process_identity(os.getpid())
    if holder.get("host") != socket.gethostname() or not all(
        recorded.get(key) and recorded.get(key) == here[key] for key in ("boot_id", "pid_namespace")
    ):
        return None  # another machine, boot or container: its pids mean nothing here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} on this host ({holder.get('host')}) is no longer running"
    except PermissionError:
        pass  # it exists, under another user
    started = start_ticks(pid)
    if started and recorded.get("start_ticks") and started != recorded["start_ticks"]:
        return f"process {pid} on this host ({holder.get('host')}) ended (the pid now belongs to a newer process)"
    return None
