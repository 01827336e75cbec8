"""A site tree's files, and pruning them: named rules, each removing one kind of file a Lambda runtime never needs.
Never removed: METADATA, licenses, `keep` (what the verification imports) and anything no rule claims."""

import dataclasses
import fnmatch
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ci.cache_seal import sources_digest


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under root, in a stable order."""
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            if path.is_file() and not path.is_symlink():
                yield path


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to a cached file (a copy across file systems); only for files no one writes in place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def tree_size(root: Path) -> tuple[int, int]:
    sizes = [path.stat().st_size for path in walk_files(root)]
    return len(sizes), sum(sizes)


def in_vendored_libs(rel: str) -> bool:
    """auditwheel's `<pkg>.libs/` (patchelf-edited libraries that strip would break)."""
    return any(part.endswith(".libs") for part in rel.split("/")[:-1])


def remove_empty_dirs(root: Path) -> None:
    """Bottom-up, so a directory whose only content was an emptied directory goes too."""
    for current, _dirs, _files in os.walk(root, topdown=False):
        path = Path(current)
        if path != root and not any(path.iterdir()):
            path.rmdir()


def globbed(site: Path, patterns: tuple[str, ...]) -> frozenset[str]:
    """Files under `site` matching build.keep's globs: no rule may remove them."""
    if not patterns:
        return frozenset()
    rels = [path.relative_to(site).as_posix() for path in walk_files(site)]
    return frozenset(rel for rel in rels if _matches(rel, patterns))


STRIP = "strip"
LICENSE_PATTERNS = ("LICENSE*", "LICENCE*", "COPYING*", "NOTICE*", "AUTHORS*", "COPYRIGHT*")


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    dir_names: frozenset[str] = frozenset()
    file_names: tuple[str, ...] = ()  # fnmatch patterns on the file name
    suffixes: tuple[str, ...] = ()
    dir_filter: Callable[[PurePosixPath], bool] = lambda _rel: True  # e.g. only at the top
    installer_records: bool = False  # claims `file_names` inside *.dist-info, and nothing else

    def claims_dir(self, rel: PurePosixPath) -> bool:
        return rel.name in self.dir_names and not _in_dist_info(rel) and self.dir_filter(rel)

    def claims_file(self, rel: PurePosixPath) -> bool:
        if self.installer_records:
            return rel.parent.name.endswith(".dist-info") and rel.name in self.file_names
        if _in_dist_info(rel.parent):
            return False
        return rel.name.endswith(self.suffixes) if self.suffixes else _matches(rel.name, self.file_names)


def _in_dist_info(rel: PurePosixPath) -> bool:
    return any(part.endswith(".dist-info") for part in rel.parts)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("tests", "test suites run by developers, never imported by the libraries",
             dir_names=frozenset({"tests", "test", "testing"}), file_names=("conftest.py",)),
        Rule("docs", "documentation shipped inside packages",
             dir_names=frozenset({"doc", "docs"}),
             file_names=("README", "README.*", "CHANGELOG*", "CHANGES*", "HISTORY*", "THANKS*")),
        Rule("benchmarks", "performance suites", dir_names=frozenset({"benchmarks", "benchmark", "asv_bench"})),
        Rule("examples", "example scripts", dir_names=frozenset({"examples", "example"})),
        Rule("caches", "bytecode shipped in wheels (built for another layout; we compile our own)",
             dir_names=frozenset({"__pycache__"}), suffixes=(".pyc", ".pyo")),
        Rule("sources", "C/C++/Cython/Fortran sources, headers and static libraries: build inputs only",
             suffixes=(".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".pyx", ".pxd", ".pxi",
                       ".f", ".f90", ".a", ".pyx.in", ".pxd.in", ".c.in", ".h.in")),
        Rule("stubs", "type stubs (.pyi) for type checkers; py.typed stays", suffixes=(".pyi",)),
        Rule("scripts", "console scripts in bin/: Lambda never puts /opt/python/bin on PATH",
             dir_names=frozenset({"bin"}), dir_filter=lambda rel: len(rel.parts) == 1),
        Rule("bookkeeping", "installer records (RECORD, INSTALLER, ...); METADATA and licenses stay",
             file_names=("RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"),
             installer_records=True),
    )
}  # fmt: skip


def fingerprint(names: Iterable[str]) -> str:
    """sha256 of the named rules' definitions and this module's source: editing a rule must not reuse a cache."""
    digest = hashlib.sha256(sources_digest(Path(__file__)).encode())
    for name in names:
        digest.update(f"\0{name}\0{_definition(RULES[name]) if name in RULES else ''}".encode())
    return digest.hexdigest()


def _definition(rule: Rule) -> str:
    values: list[object] = [type(rule).__qualname__]
    for spec in dataclasses.fields(rule):
        value = getattr(rule, spec.name)
        if callable(value):
            code = value.__code__
            value = (code.co_code.hex(), repr(code.co_consts), code.co_names)
        elif isinstance(value, frozenset):
            value = sorted(value)
        values.append((spec.name, value))
    return repr(values)


def always_kept(rel: PurePosixPath) -> bool:
    """Never removed: METADATA of every distribution and every license file."""
    metadata = rel.parent.name.endswith(".dist-info") and rel.name == "METADATA"
    licenses = "licenses" in rel.parts[:-1] and _in_dist_info(rel)
    return metadata or licenses or _matches(rel.name.upper(), LICENSE_PATTERNS)


@dataclass
class RuleResult:
    name: str
    files: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)  # every path removed (or changed), relative to the site
    spared: list[str] = field(default_factory=list)  # claimed but kept: verification imports them

    def remove(self, site: Path, rel: str) -> None:
        self.files += 1
        self.bytes += (site / rel).stat().st_size
        self.paths.append(rel)
        (site / rel).unlink()

    def summary(self, limit: int = 20) -> dict[str, object]:
        data: dict[str, object] = {"files": self.files, "bytes": self.bytes, "paths": self.paths[:limit]}
        if self.spared:
            data["spared"] = self.spared[:limit]
        return data


def plan(site: Path, names: Iterable[str], keep: frozenset[str] = frozenset()) -> dict[str, str]:
    """Which files (relative to `site`) each rule would remove: {path: rule}. Nothing is touched."""
    rules = [RULES[name] for name in names if name in RULES]
    spared_dirs = {str(parent) for rel in keep for parent in PurePosixPath(rel).parents}

    @functools.cache  # each directory is judged once, not once per file under it
    def dir_rule(directory: str) -> str | None:
        return next((rule.name for rule in rules if rule.claims_dir(PurePosixPath(directory))), None)

    claimed: dict[str, str] = {}
    for path in walk_files(site):
        rel = PurePosixPath(path.relative_to(site).as_posix())
        if always_kept(rel) or str(rel) in keep:
            continue
        directories = ("/".join(rel.parts[:depth]) for depth in range(1, len(rel.parts)))
        by_directory = next((name for d in directories if d not in spared_dirs and (name := dir_rule(d))), None)
        rule = by_directory or next((rule.name for rule in rules if rule.claims_file(rel)), None)
        if rule is not None:
            claimed[str(rel)] = rule
    return claimed


def apply_rules(site: Path, names: Iterable[str], keep: frozenset[str] = frozenset()) -> dict[str, RuleResult]:
    """Remove what the named rules claim; a result per rule (in the configured order), zero if nothing."""
    results = {name: RuleResult(name) for name in names if name in RULES}
    planned = plan(site, results, keep)
    for rel, rule in sorted(plan(site, results).items()):  # what `keep` saved is reported, so the protection shows
        if rel not in planned:
            results[rule].spared.append(rel)
    for rel, rule in sorted(planned.items()):
        results[rule].remove(site, rel)
    remove_empty_dirs(site)
    return results


REMOVE = "remove:"  # prefix of a [build] remove glob's name where rules are named (reports, attributions)


def describe(name: str) -> str:
    """'rule 'tests'' or 'build.remove glob "sklearn/cluster/*"': what removed or changed a file."""
    if name.startswith(REMOVE):
        return f'build.remove glob "{name.removeprefix(REMOVE)}"'
    return f"rule '{name}'"


def undo(names: Iterable[str]) -> str:
    """The fix that takes the named rules and remove globs back out of pipeline.toml."""
    names = sorted(set(names))
    globs = [f'"{name.removeprefix(REMOVE)}"' for name in names if name.startswith(REMOVE)]
    rules = [name for name in names if not name.startswith(REMOVE)]
    undo = [f"delete {', '.join(globs)} from build.remove"] if globs else []
    undo += [f"drop {', '.join(rules)} from build.prune"] if rules else []
    return " or ".join(undo) or "drop the rule involved"


def apply_removals(
    site: Path, globs: Iterable[str], keep_globs: Iterable[str] = (), strict: bool = True
) -> dict[str, RuleResult]:
    """Remove what each [build] remove glob matches, unless build.keep or always_kept protects it; a glob that
    removes nothing (a typo) is a ConfigError unless not `strict` (a part of a layer, in a what-if)."""
    from ci.errors import ConfigError

    keep_globs = tuple(keep_globs)
    rels = [path.relative_to(site).as_posix() for path in walk_files(site)]
    results: dict[str, RuleResult] = {}
    owner: dict[str, str] = {}  # removed path -> the glob that removed it
    for glob in globs:
        result = results[f"{REMOVE}{glob}"] = RuleResult(f"{REMOVE}{glob}")
        matched = [rel for rel in rels if fnmatch.fnmatchcase(rel, glob)]
        if strict and not matched:
            raise ConfigError(
                f'[build] remove glob "{glob}" matches no file under python/{_near(glob, rels)}',
                f'fix the glob (paths are relative to python/, e.g. "sklearn/cluster/*") or delete "{glob}" '
                "from [build] remove in pipeline.toml",
            )
        why_not: set[str] = set()
        for rel in matched:
            keep = next((keep for keep in keep_globs if fnmatch.fnmatchcase(rel, keep)), None)
            if rel in owner:
                why_not.add(f'already removed by "{owner[rel]}"')
            elif keep is not None or always_kept(PurePosixPath(rel)):
                why_not.add(f'build.keep "{keep}"' if keep else "metadata and licenses are always kept")
                result.spared.append(rel)
            else:
                result.remove(site, rel)
                owner[rel] = glob
        if strict and not result.files:
            reasons = "; ".join(sorted(why_not))
            raise ConfigError(
                f'[build] remove glob "{glob}" matches {len(matched)} file(s) but removes none ({reasons})',
                f'delete "{glob}" from [build] remove in pipeline.toml, or the build.keep glob that protects them',
            )
    remove_empty_dirs(site)
    return results


def _near(glob: str, rels: list[str]) -> str:
    """' (did you mean "sklearn/cluster/*"?)' from the folders the tree has at the glob's depth, or ''."""
    import difflib

    prefix = glob.split("*")[0].rstrip("/")
    depth = prefix.count("/") + 1
    folders = sorted({"/".join(rel.split("/")[:depth]) for rel in rels if rel.count("/") >= depth})
    close = difflib.get_close_matches(prefix, folders, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}/*"?)' if close and f"{close[0]}/*" != glob else ""
