"""What could make room, for the built layer's budget and a what-if's projected layer alike; every suggestion
carries the pipeline.toml lines that do it, so advice can be pasted as is."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from ci.budget.contents import Entry, ImportTrace, compact_removals
from ci.budget.model import Group, Suggestion
from ci.errors import toml_value
from ci.units import as_bytes, as_mb

CONTAINER_IMAGE_LIMIT = 10 * 1024**3  # Lambda: container images up to 10 GB, uncompressed, all layers included
LAYER_PREFIX = "python/"
COMPACT_LINES = ("sourceless = true", "prune_unimported = true")


def suggest(
    name: str, action: str, paste: Sequence[str], section: str, saves: int | None, used_bytes: int
) -> Suggestion:
    """The one projection: `saves` bytes out of the `used_bytes` counted now leaves the difference."""
    leaves = None if saves is None else used_bytes - saves
    return Suggestion(name, action, tuple(paste), section, saves, leaves)


def outcome(suggestion: Suggestion, limit_bytes: int) -> str:
    """'leaves 258.4 MB: fits, 98.6%' or 'leaves 270.1 MB: still over by 8.0 MB' (or why it is unknown)."""
    leaves = suggestion.leaves_bytes
    if leaves is None:
        return "what would remain is known only once it is built"
    if suggestion.fits(limit_bytes):
        return f"leaves {as_mb(leaves)}: fits, {100 * leaves / limit_bytes:.1f}% of the limit"
    over = leaves - limit_bytes
    return f"leaves {as_mb(leaves)}: still over by {as_mb(over) if over >= 50_000 else f'{as_bytes(over)} bytes'}"


def paste_text(suggestion: Suggestion, code: Callable[[str], str] = lambda line: line) -> str:
    """'paste under [build]: sourceless = true and prune_unimported = true' (each line through `code`)."""
    if not suggestion.paste:
        return ""
    return f"paste under [{suggestion.section}]: " + " and ".join(code(line) for line in suggestion.paste)


def describe(suggestion: Suggestion, limit_bytes: int, code: Callable[[str], str] = lambda line: line) -> str:
    """The whole advice on one line: action; the line to paste; what it saves and what would remain."""
    parts = [suggestion.action]
    if suggestion.paste:
        parts.append(paste_text(suggestion, code))
    saving = f"saves {as_mb(suggestion.saves_bytes)}, " if suggestion.saves_bytes else ""
    return "; ".join(parts) + f" — {saving}{outcome(suggestion, limit_bytes)}"


def remove_globs(entries: Iterable[Entry]) -> list[str]:
    """[build] remove globs (relative to python/) for what these entries install, their metadata left alone
    (importlib.metadata must still answer for every locked distribution)."""
    globs = set()
    for entry in entries:
        parts = entry.path.removeprefix(LAYER_PREFIX).split("/")
        if parts[0].endswith(".dist-info"):
            continue
        if parts[0] == "__pycache__" and len(parts) == 2:  # a top-level module's bytecode: six.cpython-311.pyc
            globs.add(f"__pycache__/{parts[1].split('.')[0]}.*")
        else:
            globs.add(f"{parts[0]}/*" if len(parts) > 1 else parts[0])
    return sorted(globs)


def remove_line(configured: Sequence[str], globs: Iterable[str]) -> str:
    """`remove = [...]`: the configured globs and the new ones, so pasting it replaces the key whole."""
    return f"remove = {toml_value([*configured, *(g for g in globs if g not in configured)])}"


def removal_options(
    used_bytes: int,
    limit_bytes: int,
    entries: Mapping[str, list[Entry]],  # distribution -> its entries in the layer as it would ship
    judged: set[str],  # distributions the trace can speak for
    trace: ImportTrace | None,
    compact_already: bool,
    never_imported: Iterable[str],
    imported_where: str,
    configured_remove: Sequence[str] = (),
    folders: Sequence[Group] = (),  # package folders nothing was imported from ("sklearn/cluster")
    compact_bytes: int | None = None,  # function + layers measured with the compact profile, if measured
    compact_how: str = "",
) -> list[Suggestion]:
    """The options, largest saving first; a container image last when none of them brings it under."""
    sizes = {e.path: e.unzipped_bytes for group in entries.values() for e in group}
    options: list[Suggestion] = []
    compact: set[str] = set()
    if not compact_already:
        compact = compact_removals([e for name, group in entries.items() if name in judged for e in group], trace)
        saves = sum(sizes[path] for path in compact) if compact_bytes is None else used_bytes - compact_bytes
        scope = (
            "files the import trace never saw and .py shipped beside its .pyc"
            if trace
            else ".py shipped beside its .pyc"
        )
        action = (
            f"turn on the compact profile: it drops {compact_how if compact_bytes is not None else scope}; the build "
            "proves the imports and the handler's answers on every event again, and the full smoke must still pass"
        )
        options.append(suggest("compact", action, COMPACT_LINES, "build", saves, used_bytes))
    unused = [name for name in never_imported if name in judged and name in entries]
    dropped = {e.path for name in unused for e in entries[name] if ".dist-info/" not in e.path}
    never_globs = remove_globs(e for name in unused for e in entries[name])
    if unused and never_globs:
        paste = remove_line(configured_remove, never_globs)
        action = (
            f"distributions shipped but never imported {imported_where}: "
            + ", ".join(f"{name} ({as_mb(sum(e.unzipped_bytes for e in entries[name]))})" for name in unused)
            + "; remove what they install only if nothing needs them at runtime (events not among the "
            "committed ones, lazy imports when unpickling); their metadata stays, so the pins still agree"
        )
        options.append(suggest("never-imported", action, [paste], "build", sum(sizes[p] for p in dropped), used_bytes))
        if compact and not compact_already and compact_bytes is None:
            action = f"the compact profile and removing {', '.join(unused)}, together"
            saves = sum(sizes[path] for path in compact | dropped)
            both = suggest("together", action, [*COMPACT_LINES, paste], "build", saves, used_bytes)
            if (both.saves_bytes or 0) > max(option.saves_bytes or 0 for option in options):
                options.append(both)
    for folder in folders:
        action = (
            f"nothing in python/{folder.name} ({as_mb(folder.unzipped_bytes)}, {folder.files} files) was imported "
            f"{imported_where}: remove it (the build proves every import and the handler on every event again; "
            "the full smoke must still pass)"
        )
        paste = remove_line(configured_remove, [f"{folder.name}/*"])
        options.append(suggest("folder", action, [paste], "build", folder.unzipped_bytes, used_bytes))
    options.sort(key=lambda option: -(option.saves_bytes or 0))
    best = min((option.leaves_bytes for option in options if option.leaves_bytes is not None), default=used_bytes)
    if used_bytes >= limit_bytes and best >= limit_bytes:
        action = (
            f"nothing above brings it under {limit_bytes:,} bytes: ship the function as a container image "
            f"instead (Lambda allows 10 GB, {CONTAINER_IMAGE_LIMIT:,} bytes, uncompressed; this set is "
            f"{as_mb(used_bytes)}, {100 * used_bytes / CONTAINER_IMAGE_LIMIT:.1f}% of it)"
        )
        options.append(suggest("container-image", action, (), "", 0, used_bytes))
    return options
