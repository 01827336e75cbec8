"""`python -m ci budget`: the size budget against Lambda's unzipped limit, and the size report."""

import argparse
import dataclasses
import logging
from pathlib import Path

from ci import logs
from ci.config import Config
from ci.errors import CheckFailedError
from ci.paths import BuildPaths

logger = logging.getLogger(__name__)
HELP = "Count what Lambda counts against the 262,144,000-byte unzipped limit and write the size report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline", type=Path, metavar="PATH", help="a budget.json to compare with (e.g. the base branch's)"
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="build the layer from requirements-layer.txt at this git ref with the same rules and compare",
    )
    parser.add_argument(
        "--baseline-label", metavar="LABEL", help="how the report names the baseline (default: the ref, or 'baseline')"
    )
    parser.add_argument(
        "--rebuild-baseline",
        action="store_true",
        help="with --baseline-ref: build the baseline even if its lock equals this one or a cached build exists",
    )
    parser.add_argument(
        "--limit-bytes",
        type=int,
        metavar="BYTES",
        help="override budget.limit_bytes of pipeline.toml (e.g. to leave room for later)",
    )
    parser.add_argument(
        "--what-if",
        nargs="*",
        metavar="SPEC",
        help="project the layer with these requirements added (NAME, NAME==VERSION, '-r FILE') for the target; "
        "changes no lock, zip or report but reports/budget-what-if.json",
    )
    parser.add_argument(
        "-r", "--requirement", action="append", default=[], type=Path, metavar="FILE",
        help="with --what-if: add the requirements of FILE too"
    )  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="with --what-if: recompute instead of a cached answer")


def run(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    from ci.budget.compute import baseline_from_ref, compare, compute_budget, gather_inputs, load_baseline
    from ci.budget.render import removal_advice, render_markdown, render_terminal, verdict_message, write_budget_json
    from ci.lock.resolve import read_notes
    from ci.snapshot import take

    if args.what_if is not None or args.requirement:
        return run_what_if(args, config, paths)
    if args.baseline and args.baseline_ref:
        raise CheckFailedError("--baseline and --baseline-ref both given", "compare with one baseline at a time")
    # Snapshot, then judge: the budget reads only these copies, and budget.json names exactly them.
    judged = [take(paths, paths.layer_zip, "layer.zip"), take(paths, paths.function_zip, "function.zip")]
    function_zip = judged[1].path
    budget = compute_budget(gather_inputs(config, paths, args.limit_bytes, None, function_zip, judged[0].path))
    if args.baseline or args.baseline_ref:
        if args.baseline:
            figures, source = load_baseline(args.baseline), str(args.baseline)
        else:
            figures, source = baseline_from_ref(
                config, paths, args.baseline_ref, budget, args.rebuild_baseline, function_zip
            )
        label = args.baseline_label or (args.baseline_ref or "baseline").removeprefix("origin/")
        budget = dataclasses.replace(budget, comparison=compare(budget, figures, label, source))
    # What the layer leaves to the runtime (counted by Lambda nowhere) and what it bundles instead: the lock's notes.
    runtime_notes = read_notes(config.lock.layer_lock)
    runtime_section = ["", "### Packages the Lambda runtime provides", "", *(f"- {line}" for line in runtime_notes[1:])]
    headline, _, table = (render_terminal(budget) + "".join(f"\n{line}" for line in runtime_notes)).partition("\n")
    logs.result(logger, headline)  # PASS/FAIL and the numbers; the tables below are detail
    logger.info(table)
    report = write_budget_json(paths, budget, judged)
    markdown = paths.reports / "budget.md"
    markdown.write_text(render_markdown(budget) + ("\n".join(runtime_section) + "\n" if runtime_notes else ""))
    logger.info(f"\nwrote {report} and {markdown}")

    # On GitHub, `python -m ci.github annotate` turns budget.json into annotations; here, plain text.
    message = verdict_message(budget)
    if budget.passed:
        if message:
            logger.warning(f"warning: {message}")
        return 0
    raise CheckFailedError(message or "the size budget failed", removal_advice(budget))


def run_what_if(args: argparse.Namespace, config: Config, paths: BuildPaths) -> int:
    """Print the answer, write reports/budget-what-if.json, exit 0 (pass, warn) or 1 (fail)."""
    from ci.budget import what_if
    from ci.lock.lockfile import display_path
    from ci.reports import Finding, write_report

    request = what_if.parse_request(args.what_if or [], args.requirement, Path.cwd())  # a typo fails before any work
    try:
        answer = what_if.what_if(config, paths, request, args.limit_bytes, args.fresh)
    except what_if.UnresolvableError as exc:
        findings = [Finding(what_if.CHECK, "error", item.message, item.fix) for item in exc.unfit] or None
        failed = {"what_if": request.shown(), "error": exc.problem, "fix": exc.fix}
        write_report(paths, what_if.CHECK, False, failed, findings=findings)
        raise
    findings = [Finding.from_dict(item, what_if.CHECK) for item in answer.findings]
    total = answer.timings.get("total", 0.0)
    data = {**answer.report, "cache": "hit" if answer.from_cache else "miss", "answered_in_s": total}
    report = write_report(paths, what_if.CHECK, answer.passed, data, findings=findings)
    logs.result(logger, answer.text)
    how = "answered from the cache" if answer.from_cache else "computed"
    logger.info(f"\nwrote {display_path(report, config.root)} ({how} in {total:.1f}s)")
    errors = [finding for finding in findings if finding.severity == "error"]
    if errors:
        raise CheckFailedError(errors[0].message, errors[0].fix)
    return 0
