"""Every piece of size advice is a line to paste into pipeline.toml and says what would remain.

The budget of a built layer (budget.md, the terminal, budget.json) and a what-if's projection make their
advice with the same projection (ci/budget/compute.py): pasted as is, each line is a valid setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from budget_fixtures import TRACED, config_with, make_build, write_build_trace, zip_sums

from ci.budget.compute import compute_budget, gather_inputs
from ci.budget.render import Budget, budget_to_dict, removal_advice, render_markdown
from ci.config import load_config
from ci.paths import REPO_ROOT, BuildPaths
from ci.units import as_mb


def budget_for(paths: BuildPaths, **settings: object) -> Budget:
    return compute_budget(gather_inputs(config_with(**settings), paths))


def advice_lines(markdown: str) -> list[str]:
    return [line for line in markdown.split("What could be removed", 1)[1].splitlines() if line.startswith("- ")]


def pasted(tmp_path: Path, section: str, lines: tuple[str, ...]) -> Path:
    """The committed pipeline.toml with `lines` pasted under [section], replacing the keys they set."""
    text = (REPO_ROOT / "pipeline.toml").read_text()
    for line in lines:
        key = line.split("=", 1)[0].strip()
        text = re.sub(rf"(?m)^{key} = .*\n", "", text)
        text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    file = tmp_path / "pipeline.toml"
    file.write_text(text)
    return file


def test_each_suggestion_has_a_line_to_paste_and_says_what_would_remain(tmp_path: Path) -> None:
    paths = make_build(tmp_path / "build")
    write_build_trace(paths, TRACED)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    limit = used + 1_000_000
    budget = budget_for(paths, limit_bytes=limit)
    by_name = {idea.name: idea for idea in budget.suggestions}
    assert {"compact", "never-imported", "folder"} <= set(by_name)
    folder = next(idea for idea in budget.suggestions if idea.paste == ('remove = ["numpy/core/*"]',))
    assert folder.saves_bytes == 90_000 + 1_000 and folder.leaves_bytes == used - 91_000
    assert by_name["compact"].paste == ("sourceless = true", "prune_unimported = true")
    assert by_name["never-imported"].paste == ('remove = ["orphan/*", "scipy/*"]',)

    lines = advice_lines(render_markdown(budget))
    assert len(lines) == len(budget.suggestions)
    for idea, line in zip(budget.suggestions, lines, strict=True):
        assert idea.leaves_bytes == used - (idea.saves_bytes or 0)
        share = f"{100 * idea.leaves_bytes / limit:.1f}%"
        assert f"leaves {as_mb(idea.leaves_bytes)}: fits, {share} of the limit" in line
        assert f"paste under [{idea.section}]: " + " and ".join(f"`{p}`" for p in idea.paste) in line
        config = load_config(REPO_ROOT, file=pasted(tmp_path, idea.section, idea.paste))  # pasted, it loads
        values = tomllib.loads("\n".join(idea.paste))
        for key, value in values.items():
            got = getattr(getattr(config, idea.section), key)
            assert got == (tuple(value) if isinstance(value, list) else value)
    assert "saves up to" not in render_markdown(budget)
    assert 'paste under [build]: remove = ["numpy/core/*"]' in removal_advice(budget)
    data = budget_to_dict(budget)["suggestions"]
    assert all(item["paste"] and item["fits"] and item["outcome"].startswith("leaves ") for item in data)


def test_advice_that_is_not_enough_says_how_far_over_it_leaves_the_layer(tmp_path: Path) -> None:
    paths = make_build(tmp_path / "build")
    write_build_trace(paths, TRACED)
    used = zip_sums(paths.layer_zip, paths.function_zip)[0]
    budget = budget_for(paths, limit_bytes=used - 100_000)  # only the compact profile saves more than 100 kB
    lines = advice_lines(render_markdown(budget))
    folder = next(line for line in lines if "numpy/core/*" in line)
    assert f"leaves {as_mb(used - 91_000)}: still over by {9_000:,} bytes" in folder
    compact = next(line for line in lines if "`sourceless = true` and `prune_unimported = true`" in line)
    assert ": fits, " in compact


def test_configured_remove_globs_are_kept_in_the_line_to_paste(tmp_path: Path) -> None:
    paths = make_build(tmp_path / "build")
    write_build_trace(paths, TRACED)
    config = load_config(overrides={"build": {"remove": ["six.py"]}})
    budget = compute_budget(gather_inputs(config, paths))
    folder = next(idea for idea in budget.suggestions if "numpy/core/*" in idea.paste[0])
    assert folder.paste == ('remove = ["six.py", "numpy/core/*"]',)
