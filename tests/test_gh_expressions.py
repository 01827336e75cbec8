"""tests/gh_expressions.py against GitHub's documented expression semantics (docs.github.com/actions,
"Evaluate expressions in workflows and actions"), so the workflow tests that rely on it judge conditions right."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.gh_expressions import (
    ExpressionError,
    Outcome,
    Status,
    branch_matches,
    condition,
    evaluate,
    render,
    run_jobs,
    run_steps,
)

CONTEXTS: dict[str, Any] = {
    "github": {"event_name": "push", "ref": "refs/heads/main", "base_ref": "", "event": {}},
    "needs": {"verify": {"result": "success", "outputs": {"verified": "true"}}},
    "inputs": {"action": "deploy", "to_version": "", "save-cache": "true"},
    "list": ["a", "B"],
    "object": {"Key": 1},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # literals: numbers in any JSON format, hex; strings in single quotes, '' escapes a quote
        ("711", 711),
        ("-9.2", -9.2),
        ("0xff", 255),
        ("-2.99e-2", -0.0299),
        ("'It''s open source!'", "It's open source!"),
        ("null", None),
        # loose equality: types differ -> both as numbers (null 0, true 1, '' 0, a non-number string NaN)
        ("null == 0", True),
        ("true == 1", True),
        ("false == 0", True),
        ("'' == 0", True),
        ("' 123.5 ' == 123.5", True),
        ("' 0xff ' == 255", True),
        ("'true' == true", False),  # 'true' is NaN as a number: the classic output-vs-boolean mistake
        ("'1' == true", True),
        ("NaN == NaN", False),
        ("'abc' == 'ABC'", True),  # strings ignore case
        ("'abc' != 'abd'", True),
        ("object == object", True),  # the same instance
        ("fromJSON('{}') == fromJSON('{}')", False),  # equal content, different instances
        ("'b' > 'A'", True),
        ("'1' < 2", True),
        ("'x' < 2", False),  # NaN in any relational comparison is false
        # && and || return an operand, not a boolean
        ("'' || 'fallback'", "fallback"),
        ("'first' || 'second'", "first"),
        ("0 && 'never'", 0),
        ("1 && 'then'", "then"),
        ("github.event_name == 'push' && 'main' || 'other'", "main"),
        # precedence: ! over comparison over equality over && over ||; parentheses group
        ("!false == true", True),
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("!(1 == 1)", False),
        # property access: case-insensitive keys, a missing property is null, index by [ ]
        ("github.EVENT_NAME", "push"),
        ("object.key", 1),
        ("needs.verify.outputs.verified", "true"),
        ("needs.missing.outputs.verified", None),
        ("needs['verify'].result", "success"),
        ("inputs.save-cache == 'true'", True),
        ("list[1]", "B"),
        # functions the workflows use
        ("format('origin/{0}', 'main')", "origin/main"),
        ("format('{{0}} {1}{0}', 'a', 'b')", "{0} ba"),
        ("contains('Hello', 'ELL')", True),
        ("contains(list, 'b')", True),
        ("contains(list, 'c')", False),
        ("startsWith(github.ref, 'REFS/heads/')", True),
        ("endsWith(github.ref, '/main')", True),
        ("join(list, '+')", "a+B"),
        ("fromJSON('[1, 2]')[1]", 2),
        ("toJSON(object)", '{\n  "Key": 1\n}'),
    ],
)
def test_expression_values(expression: str, expected: Any) -> None:
    value = evaluate(expression, CONTEXTS)
    assert (value == expected and type(value) is type(expected)) or (
        isinstance(expected, int | float) and not isinstance(value, bool) and math.isclose(value, expected)
    ), (expression, value)


@pytest.mark.parametrize("falsy", ["false", "0", "-0", "''", "null", "NaN"])
def test_falsy_values_fail_a_condition(falsy: str) -> None:
    assert condition(falsy, CONTEXTS) is False
    assert condition(f"!{falsy}", CONTEXTS) is True


@pytest.mark.parametrize("truthy", ["true", "1", "'false'", "'0'", "list", "object", "fromJSON('[]')"])
def test_everything_else_passes_a_condition(truthy: str) -> None:
    assert condition(truthy, CONTEXTS) is True


def test_a_condition_without_a_status_function_also_needs_success() -> None:
    failed = Status(success=False, failure=True)
    assert condition("true", CONTEXTS, failed) is False
    assert condition(None, CONTEXTS, failed) is False  # no `if:` is success()
    assert condition("${{ always() }}", CONTEXTS, failed) is True
    assert condition("failure()", CONTEXTS, failed) is True
    assert condition("failure()", CONTEXTS, Status()) is False
    assert condition("${{ !cancelled() }}", CONTEXTS, failed) is True
    assert condition("${{ !cancelled() }}", CONTEXTS, Status(success=False, cancelled=True)) is False
    skipped = Status(success=False, failure=False)  # an ancestor was skipped
    assert condition("needs.verify.outputs.verified == 'true'", CONTEXTS, skipped) is False


def test_the_wrapper_is_optional_but_text_around_it_makes_an_always_true_string() -> None:
    assert condition("${{ github.event_name == 'pull_request' }}", CONTEXTS) is False
    assert condition("github.event_name == 'pull_request'", CONTEXTS) is False
    # `if: ${{ a }} && ${{ b }}` is the string 'false && false': non-empty, so true
    assert condition("${{ false }} && ${{ false }}", CONTEXTS) is True


def test_render_interpolates_each_expression_as_a_string() -> None:
    assert render("pr-${{ github.event.pull_request.number || github.ref }}", CONTEXTS) == "pr-refs/heads/main"
    assert render("n-${{ 3 }}-${{ true }}-${{ null }}", CONTEXTS) == "n-3-true-"
    assert render("${{ format('{0}}}', 'x') }}", CONTEXTS) == "x}"


@pytest.mark.parametrize("bad", ["a ==", "(a", "a b", '"double"', "nosuch(1)", "a.'b'"])
def test_what_is_not_an_expression_is_an_error(bad: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(bad, CONTEXTS)


def test_a_skipped_or_failed_job_skips_its_dependants_unless_their_condition_says_otherwise() -> None:
    jobs: dict[str, Any] = {
        "a": {},
        "b": {"needs": "a"},
        "c": {"needs": "b"},  # an ancestor (a) failed, through b
        "d": {"needs": "b", "if": "${{ always() }}"},
        "e": {"needs": ["b"], "if": "failure()"},
    }
    ran = run_jobs(jobs, CONTEXTS, {"a": Outcome("failure")})
    assert {j: o.result for j, o in ran.items()} == {
        "a": "failure",
        "b": "skipped",
        "c": "skipped",
        "d": "success",
        "e": "success",  # failure() sees every ancestor, not only the direct need
    }
    ran = run_jobs(jobs, CONTEXTS)
    assert [j for j, o in ran.items() if o.result == "success"] == ["a", "b", "c", "d"]


def test_a_job_sees_its_needs_results_and_outputs() -> None:
    jobs = {"v": {}, "d": {"needs": "v", "if": "needs.v.outputs.ok == 'true' && needs.v.result == 'success'"}}
    assert run_jobs(jobs, CONTEXTS, {"v": Outcome(outputs={"ok": "true"})})["d"].result == "success"
    assert run_jobs(jobs, CONTEXTS, {"v": Outcome(outputs={"ok": "false"})})["d"].result == "skipped"


def test_steps_after_a_failure_run_only_when_their_condition_asks() -> None:
    steps = [{}, {}, {"if": "failure()"}, {"if": "${{ !cancelled() }}"}, {}]
    assert run_steps(steps, CONTEXTS) == [True, True, False, True, True]
    assert run_steps(steps, CONTEXTS, failing=1) == [True, True, True, True, False]
    assert run_steps([{"continue-on-error": True}, {}], CONTEXTS, failing=0) == [True, True]


@pytest.mark.parametrize(
    ("pattern", "branch", "matches"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("releases/*", "releases/v1", True),
        ("releases/*", "releases/v1/x", False),
        ("releases/**", "releases/v1/x", True),
        ("*", "a/b", False),
    ],
)
def test_branch_filters(pattern: str, branch: str, matches: bool) -> None:
    assert branch_matches(pattern, branch) is matches
