"""Before any resolve: does every exact pin of requirements.in have a wheel for the target at all?

One message (which pin, which Python tag, the oldest release that fits) instead of a resolver trace, e.g.
scikit-learn==1.3.2 on python3.13.
"""

from __future__ import annotations

from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci.config import Config
from ci.errors import PipelineError
from ci.lock.files import display_path, read_in
from ci.lock.index import NotCachedError, Project, SimpleIndex
from ci.lock.tags import target_tags
from ci.lock.wheels import wheel_fits

UPGRADE_DOC = "docs/runtimes.md#upgrading-scikit-learn-for-a-newer-runtime"


def oldest_fitting(project: Project, config: Config, newer_than: Version) -> Version | None:
    """The oldest final, non-yanked release after `newer_than` with a wheel the target can load."""
    tags = target_tags(config.target)
    versions = {
        wheel[0]
        for file in project.files
        if (wheel := file.wheel) is not None
        and not file.yanked
        and not (wheel[0].is_prerelease or wheel[0].is_devrelease)
        and wheel[0] > newer_than
        and wheel_fits(file, config.target, tags)
    }
    return min(versions, default=None)


def _unfit(project: Project, version: Version, config: Config, tags: set[Tag]) -> bool:
    """True when `version` has files but none the target can install (absent is the resolver's message)."""
    files = project.files_of(str(version))
    return bool(files) and not any(wheel_fits(file, config.target, tags) for file in files)


def check_direct_pins(config: Config, index: SimpleIndex, moving: tuple[str, ...] = ()) -> None:
    """Refuse, in one PipelineError, every `==` pin of requirements.in that has no wheel for the target
    (except the packages `moving`: `lock --upgrade NAME` releases and repins them)."""
    released = {canonicalize_name(name) for name in moving}
    target = config.target
    tags = target_tags(target)
    in_file = config.lock.requirements_in
    unfit: list[str] = []
    upgrades: list[str] = []
    names: list[str] = []
    for direct in read_in(in_file, in_file.parent):
        pinned = [spec.version for spec in direct.requirement.specifier if spec.operator in ("==", "===")]
        if len(pinned) != 1 or "*" in pinned[0] or direct.name in released:
            continue
        try:
            project = index.project(direct.name)
        except NotCachedError:
            continue  # offline and never fetched: the wheel check says so
        version = Version(pinned[0])
        if _unfit(project, version, config, tags) and project.from_cache:
            project = index.project(direct.name, fresh=True)  # never refuse on an old cache entry
        if not _unfit(project, version, config, tags):
            continue
        oldest = oldest_fitting(project, config, version)
        where = f"{display_path(in_file, config.root)}:{direct.line}"
        if oldest is None:
            found = f"no {direct.name} release has one"
            upgrades.append(f"drop {direct.name} or choose another runtime")
        else:
            found = f"the oldest {direct.name} release with one is {oldest}"
            upgrades.append(f"{direct.name}=={oldest} (or newer)")
        names.append(direct.name)
        unfit.append(
            f"{where}: {direct.name}=={version} has no {target.runtime.python_tag} manylinux wheel for "
            f"{target.runtime.name} {target.architecture} (glibc {target.glibc}); {found}"
        )
    if unfit:
        raise PipelineError(
            "; ".join(unfit),
            f"pin {', '.join(upgrades)} in requirements.in and training/requirements.in together (or let "
            f"`python -m ci lock --upgrade {' '.join(names)}` repin both), retrain (`make train`) and let "
            f"`python -m ci pins` prove the match ({UPGRADE_DOC}); or keep the previous [target] runtime",
        )
