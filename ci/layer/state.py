"""What the build's steps share: the state they fill in (its own module: bytecode.py and build.py both use it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.arch.interpreter import TargetInterpreter
from ci.config import Config
from ci.config_sections import BuildConfig
from ci.layer import verify
from ci.layer.proofs import ProofStore, binaries_digest, prover_digest, tree_digest
from ci.layer.wheels import CachedWheel, InstalledDistribution
from ci.lock.lockfile import LockFile
from ci.paths import BuildPaths
from ci.runtime_view import RuntimeView, runtime_view


@dataclass
class BuildState:
    """What the steps learn, in the order they learn it."""

    config: Config
    paths: BuildPaths
    interpreter: TargetInterpreter  # runs the target's native code (natively, emulated) or is missing
    timings: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    lock: LockFile | None = None
    wheels: tuple[CachedWheel, ...] = ()
    installed: list[InstalledDistribution] = field(default_factory=list)
    baseline: verify.Baseline | None = None
    keep: frozenset[str] = frozenset()
    changes: dict[str, str] = field(default_factory=dict)  # path under python/ -> rule that removed/changed it
    proofs: dict[str, str] = field(default_factory=dict)  # proof -> how it was made, or "missing: why; fix"
    digests: dict[str, str] = field(default_factory=dict)  # what a reusable proof ran on (proof_facts)
    view: RuntimeView | None = None  # the runtime's own packages, installed on first use (runtime())
    reuse_proofs: bool = True  # False: `ci build --fresh-proofs` (proofs.py)

    @property
    def options(self) -> BuildConfig:
        """[build] of pipeline.toml, as `ci build`'s flags left it."""
        return self.config.build

    def runtime(self) -> RuntimeView:
        """What Lambda puts behind the layer on sys.path: every step that imports the layer sees it too."""
        if self.view is None:
            self.view = runtime_view(self.config, self.paths)
        return self.view

    @property
    def behind(self) -> list[Path]:
        """sys.path after the layer's python/, as on Lambda: the runtime's own packages."""
        return self.runtime().behind(self.site)

    def diagnosis(self) -> verify.Context:
        """What an import failure is explained from: the rules' changes and the runtime's packages."""
        return verify.Context(
            self.site, self.changes, self.runtime(), self.config.relative(self.config.lock.requirements_in)
        )

    @property
    def python(self) -> str:
        """The target's interpreter; only steps for which `executes` answered True may use it."""
        assert self.interpreter.python is not None, "no target interpreter: call executes() first"
        return self.interpreter.python

    def executes(self, proof: str) -> bool:
        """Can this build run the target's code for `proof`? Records how it is proven, or that it is missing."""
        self.proofs[proof] = self.interpreter.proof()
        return self.interpreter.available

    @property
    def site(self) -> Path:
        return self.paths.layer_tree / "python"

    @property
    def distributions(self) -> list[str]:
        """The locked distributions, whose importlib.metadata.version() must answer."""
        assert self.lock is not None
        return [pin.name for pin in self.lock.entries]

    @property
    def function_tree(self) -> Path:
        return self.paths.build / "function"

    @property
    def top_level(self) -> dict[str, str]:
        return {entry: dist.name for dist in self.installed for entry in dist.top_level}

    @property
    def proof_store(self) -> ProofStore:
        return ProofStore(self.paths.cache / "proofs", enabled=self.reuse_proofs)

    def proof_facts(self, *, tree_changed: bool = False) -> dict[str, str]:
        """Digests of what every proof runs on: the site tree (hashed again after `tree_changed`), the
        interpreter's binaries and the pipeline's code. Each step adds what else decides its result."""
        if tree_changed or "site" not in self.digests:
            self.digests["site"] = tree_digest(self.site)
        if "interpreter" not in self.digests:
            binaries = binaries_digest(self.interpreter.binaries)
            self.digests["interpreter"] = f"{self.interpreter.mode} {binaries}"
        return {
            "site": self.digests["site"],
            "interpreter": self.digests["interpreter"],
            "prover": prover_digest(),
            "python": self.config.target.runtime.python,
            "machine": self.config.target.machine,
            "runtime_packages": self.runtime().key,  # what the imports find behind the layer
        }

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 2)
