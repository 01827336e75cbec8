"""The re-lock pull request's body, from the reports the re-lock run wrote (standard library only).

A reviewer sees without opening a log which packages moved, what held others back, the size against main,
and each failing check named with the package that most likely caused it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.reports import Finding, findings_of

MARKER = "<!-- relock -->"
CHECKS = ("lock", "build", "abi", "budget", "pins", "smoke")  # what verify.yml and make pipeline judge
IMPORT_NAMES = {"scikit-learn": ("sklearn",), "python-dateutil": ("dateutil",)}  # import name != distribution
MB = 1_000_000


@dataclass(frozen=True)
class CheckVerdict:
    check: str
    state: str  # passed | failed | missing
    detail: str  # first error finding, or why the report is missing
    culprit: str | None  # the changed package that most likely caused a failure


def read_reports(reports: Path) -> dict[str, dict[str, Any]]:
    """Every readable <check>.json in `reports` (a damaged one is left out, so it reads as missing)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(reports.glob("*.json")) if reports.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found[path.stem] = data
    return found


def changed_packages(upgrade: dict[str, Any] | None) -> list[dict[str, Any]]:
    packages = (upgrade or {}).get("packages") or []
    return [p for p in packages if isinstance(p, dict) and p.get("old") != p.get("new")]


def _mentions(text: str, name: str) -> bool:
    spellings = {name, name.replace("-", "_"), *IMPORT_NAMES.get(name, ())}
    return any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text, flags=re.IGNORECASE) for s in spellings)


def culprit_from_findings(findings: list[Finding], changed: list[str]) -> str | None:
    """The first changed distribution an error finding names (message or file)."""
    for finding in findings:
        if finding.severity != "error":
            continue
        text = f"{finding.message} {finding.file or ''}"
        for name in changed:
            if _mentions(text, name):
                return name
    return None


def budget_culprit(budget: dict[str, Any]) -> str | None:
    """The distribution that grew most against the baseline (best effort: size is additive)."""
    rows = ((budget.get("baseline") or {}).get("distributions")) or []
    grown = [r for r in rows if isinstance(r, dict) and int(r.get("delta_bytes") or 0) > 0]
    if not grown:
        return None
    top = max(grown, key=lambda r: int(r["delta_bytes"]))
    versions = f", {top.get('before_version')} → {top.get('after_version')}" if top.get("before_version") else ""
    return f"{top['name']} (+{_mb(int(top['delta_bytes']))}{versions}; the largest growth)"


def verdicts(reports: dict[str, dict[str, Any]]) -> list[CheckVerdict]:
    changed = [str(p["name"]) for p in changed_packages(reports.get("lock-upgrade"))]
    result = []
    for check in CHECKS:
        report = reports.get(check)
        if report is None:
            detail = f"no {check}.json: the step did not run or stopped before judging (see the run's log)"
            result.append(CheckVerdict(check, "missing", detail, None))
            continue
        findings = findings_of(report, check)
        errors = [f for f in findings if f.severity == "error"]
        if report.get("passed") is True and not errors:
            result.append(CheckVerdict(check, "passed", "", None))
            continue
        culprit = budget_culprit(report) if check == "budget" else None
        culprit = culprit or culprit_from_findings(errors, changed)
        detail = errors[0].message.splitlines()[0] if errors else "failed"
        result.append(CheckVerdict(check, "failed", detail, culprit))
    return result


def _mb(value: int) -> str:
    return f"{value / MB:.1f} MB"


def _signed_mb(value: int) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + _mb(abs(value))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def versions_section(upgrade: dict[str, Any] | None) -> list[str]:
    if upgrade is None:
        return ["### Versions", "", "_No lock-upgrade.json: `python -m ci lock --upgrade` did not finish._", ""]
    asked = upgrade.get("asked")
    scope = "every package" if asked == "all" else "only " + ", ".join(map(str, asked or []))
    lines = [
        f"### Versions (layer lock; upgraded {scope})",
        "",
        "| package | main | this PR | note |",
        "|---|---|---|---|",
    ]
    for package in upgrade.get("packages") or []:
        old, new = package.get("old") or "—", package.get("new") or "—"
        moved = "**" + new + "**" if old != new else new
        note = package.get("held_by") or ""
        if note:
            note = f"newest {package.get('newest')}; held back: {note}"
        lines.append(f"| {package.get('name')} | {old} | {moved} | {_cell(note)} |")
    for pin, text in (upgrade.get("repinned") or {}).items():
        lines.append(f"\nExact pin moved on request: `{pin}` is now `{text}` (the model is retrained with it).")
    for change in (upgrade.get("locks") or [])[1:]:  # the layer lock is the table above; then training, dev
        moved_pins = [*(f"+{p}" for p in change.get("added", [])), *(f"-{p}" for p in change.get("removed", []))]
        moved_pins += list(change.get("changed", []))
        if moved_pins:
            lines.append(f"\n`{change['file']}`: {', '.join(moved_pins)}")
    return [*lines, ""]


def size_section(budget: dict[str, Any] | None) -> list[str]:
    if budget is None:
        return ["### Size", "", "_No budget.json: the size budget did not run._", ""]
    used, limit = int(budget.get("used_bytes") or 0), int(budget.get("limit_bytes") or 0)
    lines = ["### Size", "", f"{used:,} of {limit:,} bytes unzipped ({budget.get('percent_used')}%), "]
    baseline = budget.get("baseline")
    if not baseline:
        lines[-1] += "no baseline to compare with."
        return [*lines, ""]
    delta = int(baseline.get("delta_bytes") or 0)
    lines[-1] += f"**{_signed_mb(delta)}** ({delta:+,} bytes) vs {baseline.get('label')}."
    rows = [r for r in baseline.get("distributions") or [] if r.get("status") != "unchanged"]
    if rows:
        lines += ["", "| distribution | change | size | versions |", "|---|---|---:|---|"]
        for row in rows:
            versions = f"{row.get('before_version') or '—'} → {row.get('after_version') or '—'}"
            lines.append(f"| {row['name']} | {row['status']} | {_signed_mb(int(row['delta_bytes']))} | {versions} |")
    return [*lines, ""]


def pins_section(pins: dict[str, Any] | None) -> list[str]:
    if pins is None:
        return ["### Pin match", "", "_No pins.json: the pin check did not run._", ""]
    if pins.get("passed") is True:
        return ["### Pin match", "", "✅ the model, the training lock and the layer lock agree.", ""]
    errors = [f for f in findings_of(pins, "pins") if f.severity == "error"]
    return ["### Pin match", "", "❌ " + "; ".join(_cell(f.message.splitlines()[0]) for f in errors[:5]), ""]


def render_body(reports: Path, run_url: str | None = None) -> tuple[str, list[CheckVerdict]]:
    """(Markdown body, the checks that failed or did not report)."""
    found = read_reports(reports)
    judged = verdicts(found)
    bad = [v for v in judged if v.state != "passed"]
    icon = {"passed": "✅", "failed": "❌", "missing": "⏭️"}
    if bad:
        head = f"## ❌ Re-lock for the Lambda target: {len(bad)} check(s) did not pass"
    else:
        head = "## ✅ Re-lock for the Lambda target: every check passed"
    lines = [MARKER, head, ""]
    if bad:
        lines += ["Merge only once these pass; the cause is named where a finding or the size delta shows it.", ""]
    lines += ["| check | verdict | caused by | detail |", "|---|---|---|---|"]
    for v in judged:
        culprit = v.culprit or ("not named by the findings" if v.state == "failed" else "")
        lines.append(f"| {v.check} | {icon[v.state]} {v.state} | {_cell(culprit)} | {_cell(v.detail)} |")
    lines.append("")
    lines += versions_section(found.get("lock-upgrade"))
    lines += size_section(found.get("budget"))
    lines += pins_section(found.get("pins"))
    footer = f"by [this run]({run_url})" if run_url else "by `python -m ci.github relock-pr`"
    lines.append(
        f"<sub>Written {footer}: `python -m ci lock --upgrade`, retrain, build, abi, budget vs main, pins, smoke. "
        "The branch is rewritten on every run; push fixes to another branch.</sub>"
    )
    return "\n".join(lines) + "\n", bad
