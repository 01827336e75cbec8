"""The ABI scan as a terminal table: one line per violation, then the GLIBC summary."""

from __future__ import annotations

from ci.abi.check import AbiScan
from ci.abi.elf import version_text
from ci.config import Target
from ci.tables import text_table


def render_table(scan: AbiScan, target: Target, source: str) -> str:
    machines = ", ".join(f"{count} {name}" for name, count in sorted(scan.machines.items())) or "none"
    lines = [
        f"ABI check of {source} for {target.runtime.name} {target.architecture} "
        f"(glibc {target.glibc}, extension tag {target.extension_suffix})",
        f"  {scan.files} files, {scan.elf_files} ELF ({machines}), {scan.extension_modules} extension modules",
    ]
    if scan.max_glibc is not None:
        lines.append(f"  newest GLIBC needed: {version_text(scan.max_glibc)} ({scan.max_glibc_file})")
        for name, version in sorted(scan.glibc_by_distribution.items()):
            lines.append(f"    {name:<28} GLIBC {version_text(version)}")
    if not scan.violations:
        lines.append("  no violations")
        return "\n".join(lines)
    rows = [(v.rule, v.distribution or "?", v.path, v.message) for v in scan.violations]
    lines.append(f"  {len(scan.violations)} violation(s):")
    lines.append(text_table(("RULE", "DISTRIBUTION", "FILE", "PROBLEM"), rows, indent="  ", rule=False))
    return "\n".join(lines)
