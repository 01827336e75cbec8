"""GitHub Actions expressions evaluated, and a workflow's jobs run as GitHub decides which run.

A test that looks for `needs.verify.outputs.verified == 'true'` inside an `if:` passes when the condition
around it is wrong; these helpers evaluate the condition in a concrete run instead. They cover the subset of
the syntax the workflows use, with the semantics of docs.github.com/actions (Evaluate expressions): loose
equality (different types compared as numbers, strings ignoring case), `&&`/`||` returning an operand, the
implicit `success() &&` of a condition without a status function, and a job skipped unless its condition holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

import yaml

Value = Any  # None, bool, float, str, list or dict: the expression language's null, boolean, number, string, ...
Node = Callable[["Scope"], Value]

STATUS_FUNCTIONS = frozenset({"success", "failure", "cancelled", "always"})
TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?0x[0-9a-fA-F]+|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<op>&&|\|\||==|!=|<=|>=|[<>!().,\[\]])
    | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)
JSON_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class ExpressionError(ValueError):
    """The text is not an expression this evaluator understands (GitHub would reject it, or it is not used here)."""


@dataclass(frozen=True)
class Status:
    """What the status functions see: the job's ancestors (a job's `if`) or its earlier steps (a step's `if`)."""

    success: bool = True
    failure: bool = False
    cancelled: bool = False


@dataclass
class Scope:
    contexts: Mapping[str, Value]
    status: Status = field(default_factory=Status)
    hash_files: Callable[..., str] | None = None


# --- values --------------------------------------------------------------------------------------


def kind(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def to_number(value: Value) -> float:
    """GitHub's cast: null 0, booleans 1/0, a string by JSON number syntax (blank is 0), anything else NaN."""
    match kind(value):
        case "null":
            return 0.0
        case "boolean" | "number":
            return float(value)
        case "string":
            text = value.strip()
            if not text:
                return 0.0
            if JSON_NUMBER.fullmatch(text):
                return float(text)
            sign, digits = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.lstrip("+"))
            for prefix, base in (("0x", 16), ("0o", 8)):
                if digits.lower().startswith(prefix):
                    try:
                        return sign * int(digits[2:], base)
                    except ValueError:
                        return math.nan
            return {"Infinity": sign * math.inf}.get(digits, math.nan)
    return math.nan


def to_string(value: Value) -> str:
    match kind(value):
        case "null":
            return ""
        case "boolean":
            return "true" if value else "false"
        case "number":
            number = float(value)
            return str(int(number)) if number.is_integer() else repr(number)
        case "string":
            return str(value)
    return "Array" if isinstance(value, list) else "Object"


def truthy(value: Value) -> bool:
    """Falsy: false, 0, -0, '', null (and NaN); everything else, arrays and objects included, is truthy."""
    if kind(value) == "number":
        return value != 0 and not math.isnan(value)
    if kind(value) in ("array", "object"):
        return True
    return bool(value)


def equal(left: Value, right: Value) -> bool:
    """Loose equality: different types compare as numbers, strings ignore case, arrays/objects by identity."""
    if kind(left) != kind(right):
        return to_number(left) == to_number(right)
    if kind(left) == "string":
        return bool(left.casefold() == right.casefold())
    if kind(left) in ("array", "object"):
        return left is right
    return bool(left == right)


def unequal(left: Value, right: Value) -> bool:
    return not equal(left, right)


def compare(left: Value, right: Value, op: str) -> bool:
    if kind(left) in ("array", "object") or kind(right) in ("array", "object"):
        return False
    if kind(left) == kind(right) == "string":
        a: Any = left.casefold()
        b: Any = right.casefold()
    else:
        a, b = to_number(left), to_number(right)
        if math.isnan(a) or math.isnan(b):
            return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def member(value: Value, key: Value) -> Value:
    """`a.b` / `a[b]`: object keys ignore case; a missing key, or a property of a non-object, is null."""
    if isinstance(value, dict):
        name = to_string(key).casefold()
        return next((v for k, v in value.items() if k.casefold() == name), None)
    if isinstance(value, list) and kind(key) == "number" and 0 <= key < len(value):
        return value[int(key)]
    return None


def format_string(template: Value, *args: Value) -> str:
    """format('{0} {1}', a, b): `{{` and `}}` are literal braces."""
    text, out, index = to_string(template), [], 0
    while index < len(text):
        if text.startswith(("{{", "}}"), index):
            out.append(text[index])
            index += 2
        elif text[index] == "{":
            end = text.index("}", index)
            out.append(to_string(args[int(text[index + 1 : end])]))
            index = end + 1
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def contains(search: Value, item: Value) -> bool:
    if isinstance(search, list):
        return any(equal(element, item) for element in search)
    return to_string(item).casefold() in to_string(search).casefold()


def call(name: str, args: list[Value], scope: Scope) -> Value:
    match name:
        case "success" | "failure" | "cancelled":
            return bool(getattr(scope.status, name))
        case "always":
            return True
        case "contains":
            return contains(*args)
        case "startswith":
            return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
        case "endswith":
            return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
        case "format":
            return format_string(*args)
        case "join":
            separator = to_string(args[1]) if len(args) > 1 else ","
            return separator.join(map(to_string, args[0])) if isinstance(args[0], list) else to_string(args[0])
        case "tojson":
            return json.dumps(args[0], indent=2)
        case "fromjson":
            return json.loads(to_string(args[0]))
        case "hashfiles":
            if scope.hash_files is None:
                raise ExpressionError("hashFiles() needs a hash_files function in the scope")
            return scope.hash_files(*map(to_string, args))
    raise ExpressionError(f"unknown function {name}()")


# --- parsing -------------------------------------------------------------------------------------


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while text[position:].strip():
        match = TOKEN.match(text, position)
        if not match:
            raise ExpressionError(f"cannot read {text[position:]!r} in {text!r}")
        tokens.append((str(match.lastgroup), match.group(str(match.lastgroup))))
        position = match.end()
    return tokens


def constant(value: Value) -> Node:
    return lambda scope: value


def binary(left: Node, right: Node, combine: Callable[[Value, Value], Value]) -> Node:
    return lambda scope: combine(left(scope), right(scope))


def short_circuit(left: Node, right: Node, op: str) -> Node:
    """`a || b` is a when a is truthy, else b; `a && b` is b when a is truthy, else a."""

    def node(scope: Scope) -> Value:
        value = left(scope)
        return right(scope) if truthy(value) == (op == "&&") else value

    return node


@dataclass
class Parser:
    """Precedence, lowest first: ||, &&, == !=, < <= > >=, !, then member access, calls and literals."""

    tokens: list[tuple[str, str]]
    functions: set[str] = field(default_factory=set)
    position: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens) or (expected and self.tokens[self.position][1] != expected):
            raise ExpressionError(f"expected {expected or 'more'} at token {self.position} of {self.tokens}")
        self.position += 1
        return self.tokens[self.position - 1]

    def parse(self) -> Node:
        node = self.logical("||")
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")
        return node

    def logical(self, op: str) -> Node:
        node = self.logical("&&") if op == "||" else self.equality()
        while self.peek() == op:
            self.take()
            node = short_circuit(node, self.logical("&&") if op == "||" else self.equality(), op)
        return node

    def equality(self) -> Node:
        node = self.comparison()
        while self.peek() in ("==", "!="):
            negate = self.take()[1] == "!="
            node = binary(node, self.comparison(), unequal if negate else equal)
        return node

    def comparison(self) -> Node:
        node = self.unary()
        while self.peek() in ("<", "<=", ">", ">="):
            op = self.take()[1]
            node = binary(node, self.unary(), partial(compare, op=op))
        return node

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            operand = self.unary()
            return lambda s: not truthy(operand(s))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                kind_, name = self.take()
                if kind_ != "name":
                    raise ExpressionError(f"expected a property name after '.', got {name!r}")
                node = binary(node, constant(name), member)
            else:
                node = binary(node, self.logical("||"), member)
                self.take("]")
        return node

    def primary(self) -> Node:
        kind_, text = self.take()
        if kind_ == "string":
            return constant(text[1:-1].replace("''", "'"))
        if kind_ == "number":
            return constant(to_number(text))
        if text == "(":
            node = self.logical("||")
            self.take(")")
            return node
        if kind_ != "name":
            raise ExpressionError(f"unexpected {text!r}")
        keywords: dict[str, Value] = {"true": True, "false": False, "null": None, "NaN": math.nan}
        keywords["Infinity"] = math.inf
        if text in keywords:
            return constant(keywords[text])
        if self.peek() == "(":
            self.take()
            args: list[Node] = []
            while self.peek() != ")":
                args.append(self.logical("||"))
                if self.peek() != ")":
                    self.take(",")
            self.take(")")
            name = text.lower()
            self.functions.add(name)
            return lambda s: call(name, [a(s) for a in args], s)
        return lambda s: member(s.contexts, text)


def compile_expression(text: str) -> tuple[Node, set[str]]:
    """The expression's evaluator and the (lower-case) names of the functions it calls."""
    parser = Parser(tokenize(text))
    return parser.parse(), parser.functions


def evaluate(text: str, contexts: Mapping[str, Value], status: Status | None = None, **scope: Any) -> Value:
    """The value of one expression (without `${{ }}`)."""
    node, _ = compile_expression(text)
    return node(Scope(contexts, status or Status(), **scope))


def split_template(text: str) -> list[tuple[bool, str]]:
    """[(is_expression, text)]: the literal parts and the insides of each `${{ }}` (quotes respected)."""
    parts: list[tuple[bool, str]] = []
    position = 0
    while (start := text.find("${{", position)) >= 0:
        parts.append((False, text[position:start]))
        index, quoted = start + 3, False
        while not (not quoted and text.startswith("}}", index)):
            if index >= len(text):
                raise ExpressionError(f"unclosed ${{{{ in {text!r}")
            quoted ^= text[index] == "'"
            index += 1
        parts.append((True, text[start + 3 : index]))
        position = index + 2
    parts.append((False, text[position:]))
    return [part for part in parts if part[0] or part[1]]


def render(text: str, contexts: Mapping[str, Value], **scope: Any) -> str:
    """A YAML value with `${{ }}` in it, as the string GitHub hands to the job or step."""
    return "".join(to_string(evaluate(t, contexts, **scope)) if is_expr else t for is_expr, t in split_template(text))


def condition(
    text: str | bool | None, contexts: Mapping[str, Value], status: Status | None = None, **scope: Any
) -> bool:
    """An `if:`: `${{ }}` optional; without a status function it means `success() && (...)`; absent is success()."""
    status = status or Status()
    if text is None:
        return status.success
    if isinstance(text, bool):
        return text and status.success
    parts = split_template(text.strip())
    if len(parts) == 1 and parts[0][0]:
        expression = parts[0][1]
    elif any(is_expr for is_expr, _ in parts):  # text around `${{ }}`: a non-empty string, always true
        return truthy(render(text, contexts, status=status, **scope)) and status.success
    else:
        expression = text
    node, functions = compile_expression(expression)
    value = truthy(node(Scope(contexts, status, **scope)))
    return value if functions & STATUS_FUNCTIONS else value and status.success


# --- a workflow run ------------------------------------------------------------------------------


def triggers(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """`on:` as a dict (YAML 1.1 reads the bare key `on` as True)."""
    value = workflow.get("on", workflow.get(True))
    if isinstance(value, str):
        return {value: None}
    return dict.fromkeys(value) if isinstance(value, list) else dict(value or {})


def branch_matches(pattern: str, branch: str) -> bool:
    """GitHub's filter patterns: `*` stops at `/`, `**` does not."""
    wildcards = {"**": ".*", "*": "[^/]*"}
    regex = "".join(wildcards.get(part) or re.escape(part) for part in re.split(r"(\*\*|\*)", pattern))
    return re.fullmatch(regex, branch) is not None


def triggered(workflow: Mapping[Any, Any], event: str, ref: str) -> bool:
    """Whether `event` on `ref` starts the workflow (branch filters of push/pull_request only)."""
    on = triggers(workflow)
    if event not in on:
        return False
    branches = (on[event] or {}).get("branches") if event in ("push", "pull_request") else None
    return branches is None or any(branch_matches(p, ref.removeprefix("refs/heads/")) for p in branches)


def needed(job: Mapping[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def ancestors(jobs: Mapping[str, Mapping[str, Any]], job_id: str) -> set[str]:
    """Every job `job_id` waits for, directly or through others."""
    seen: set[str] = set()
    todo = needed(jobs[job_id])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needed(jobs[current]))
    return seen


@dataclass(frozen=True)
class Outcome:
    result: str = "success"  # what the job ends with if it runs: success, failure or cancelled
    outputs: Mapping[str, str] = field(default_factory=dict)


def run_jobs(
    jobs: Mapping[str, Mapping[str, Any]],
    contexts: Mapping[str, Value],
    outcomes: Mapping[str, Outcome] | None = None,
    cancelled: bool = False,
) -> dict[str, Outcome]:
    """Each job's result in one run: skipped when its `if:` is false, else the given outcome (default success).

    A job's status functions see all its ancestors: success() when every one succeeded, failure() when one
    failed; a job skipped or failed before it therefore skips it unless its condition says otherwise.
    """
    outcomes = outcomes or {}
    done: dict[str, Outcome] = {}
    pending = list(jobs)
    while pending:
        ready = [j for j in pending if set(needed(jobs[j])) <= done.keys()]
        if not ready:
            raise ExpressionError(f"a cycle or an unknown job in `needs` among {pending}")
        for job_id in ready:
            pending.remove(job_id)
            results = {done[a].result for a in ancestors(jobs, job_id)}
            status = Status(
                success=not cancelled and results <= {"success"},
                failure="failure" in results,
                cancelled=cancelled,
            )
            needs = {n: {"result": done[n].result, "outputs": dict(done[n].outputs)} for n in needed(jobs[job_id])}
            runs = condition(jobs[job_id].get("if"), {**contexts, "needs": needs}, status)
            done[job_id] = outcomes.get(job_id, Outcome()) if runs else Outcome("skipped")
    return done


def run_steps(
    steps: Iterable[Mapping[str, Any]], contexts: Mapping[str, Value], failing: int | None = None
) -> list[bool]:
    """Which steps run when step number `failing` fails (None: none fails); `continue-on-error` steps never fail it."""
    executed: list[bool] = []
    failed = False
    for index, step in enumerate(steps):
        runs = condition(step.get("if"), contexts, Status(success=not failed, failure=failed))
        executed.append(runs)
        if runs and index == failing and not step.get("continue-on-error"):
            failed = True
    return executed


# --- every run a workflow can have ---------------------------------------------------------------

MAIN, FEATURE = "refs/heads/main", "refs/heads/feature"
EVENTS = ("push", "workflow_dispatch", "pull_request", "merge_group", "schedule")


def github_context(event: str, ref: str, **event_payload: Any) -> dict[str, Any]:
    """The `github` context of a run: a pull request from this repository into main unless told otherwise."""
    payload: dict[str, Any] = {
        "pull_request": {"number": 7, "head": {"repo": {"full_name": "octo/repo"}}},
        "merge_group": {"base_sha": "b" * 40},
    }
    payload.update(event_payload)
    return {
        "event_name": event,
        "ref": ref,
        "repository": "octo/repo",
        "base_ref": "main" if event == "pull_request" else "",
        "event": {event: payload[event]} if event in payload else {},
    }


def contexts(event: str, ref: str = MAIN, inputs: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
    return {"github": github_context(event, ref, **payload), "inputs": inputs or {}, "vars": {}, "secrets": {}}


def ran(results: dict[str, Outcome]) -> set[str]:
    return {job_id for job_id, outcome in results.items() if outcome.result != "skipped"}


def input_space(dispatch: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every combination of a workflow_dispatch's inputs (choices; an empty and a set string)."""
    specs = (dispatch or {}).get("inputs", {})
    values = [
        spec.get("options") or ([True, False] if spec.get("type") == "boolean" else ["", "3"])
        for spec in specs.values()
    ]
    return [dict(zip(specs, combination, strict=True)) for combination in product(*values)]


def load_yaml(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def outcome_space(workflow_jobs: dict[str, dict[str, Any]], root: Path) -> Iterator[dict[str, Outcome]]:
    """Every result (success, failure) and output ('true', 'false', unset) of each job another one waits for."""
    waited_for = sorted({n for job in workflow_jobs.values() for n in needed(job)})
    per_job = []
    for job_id in waited_for:
        job = workflow_jobs[job_id]
        names = list(job.get("outputs", {}))
        if "uses" in job:
            names = list(triggers(load_yaml(root / job["uses"]))["workflow_call"].get("outputs", {}))
        outputs = [
            {n: v for n, v in zip(names, values, strict=True) if v is not None}
            for values in product(["true", "false", None], repeat=len(names))
        ]
        per_job.append([Outcome(result, o) for result in ("success", "failure") for o in outputs])
    for combination in product(*per_job):
        yield dict(zip(waited_for, combination, strict=True))


def runs_of(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Outcome], dict[str, Outcome]]]:
    """(contexts, outcomes, results) of every run the workflow can have: each event on main or another
    branch that triggers it, each dispatch input, each outcome of the jobs others wait for."""
    workflow = load_yaml(path)
    for event, ref in product(EVENTS, (MAIN, FEATURE)):
        if triggered(workflow, event, ref):
            dispatch = triggers(workflow).get(event) if event == "workflow_dispatch" else None
            for inputs in input_space(dispatch):
                for outcomes in outcome_space(workflow["jobs"], path.parents[2]):
                    run = contexts(event, ref, inputs)
                    yield run, outcomes, run_jobs(workflow["jobs"], run, outcomes)


def hashed_files(text: str, run: dict[str, Any]) -> set[str]:
    """The files a cache key's hashFiles() calls hash in this run."""
    files: set[str] = set()

    def record(*patterns: str) -> str:
        files.update(patterns)
        return "hash"

    render(text, run, hash_files=record)
    return files
