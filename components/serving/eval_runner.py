"""The eval gate's runner: a promptfoo-style test file run against one model version's OpenAI-compatible Service.

Standard library only, so it runs as ``python -m`` in a Job from the pinned Python image with nothing installed.
The file is a promptfoo configuration written as JSON (promptfoo reads JSON as well as YAML configs): ``prompts``
(templates with ``{{var}}`` placeholders) and ``tests``, each with ``vars`` and ``assert``, a list of
``{"type", "value"}`` or, for ``latency``, ``{"type", "threshold"}``. The assertion types supported are
promptfoo's deterministic ones below, with promptfoo's meaning (promptfoo.dev/docs/configuration/expected-outputs/
deterministic/, read 2026-12-06); any other type is refused before a request is sent, so a file that promptfoo
would judge differently never passes here silently:

- ``equals``: the output is exactly ``value``;
- ``contains`` / ``icontains``: the output contains ``value`` (``icontains`` ignoring case);
- ``regex``: ``value``, a regular expression, matches somewhere in the output;
- ``is-json``: the whole output is valid JSON;
- ``contains-json``: the output contains a valid JSON object or array somewhere;
- ``latency``: the answer took at most ``threshold`` milliseconds.

With ``--baseline-url`` (the stable version's own Service) the runner is also a regression gate: the same cases
are asked of the baseline first, then of the candidate, and the candidate fails when it passes more than
``--max-regression`` cases fewer than the baseline; each case that passes on the baseline and fails on the
candidate is printed (``REGRESSED``). A baseline that cannot be asked (refused, unreachable, timed out) is no
baseline: the run stops with exit 2 rather than judging the candidate against a number it never measured.

Exit codes: 0 the pass rate met ``--pass-rate`` (and, comparing, the candidate did not regress); 1 it did not (the
failing cases are printed, one per line); 2 a bad suite file or arguments, or a baseline that did not answer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

ASSERTIONS = ("equals", "contains", "icontains", "regex", "is-json", "contains-json", "latency")


class SuiteError(Exception):
    """The suite file cannot be run as written (exit 2)."""


@dataclass(frozen=True)
class Case:
    description: str
    prompt: str
    asserts: list[dict[str, Any]]


@dataclass
class Result:
    case: Case
    passed: bool
    failures: list[str] = field(default_factory=list)
    answered: bool = True
    """False when the server gave no answer at all (refused, unreachable, timed out)."""


def load_suite(text: str) -> list[Case]:
    """Every (prompt, test) pair of the file, as promptfoo runs each test against each prompt."""
    try:
        suite = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"the suite is not JSON: {exc}") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("prompts"), list) or not suite["prompts"]:
        raise SuiteError("the suite needs 'prompts', a non-empty list of prompt templates")
    tests = suite.get("tests")
    if not isinstance(tests, list) or not tests:
        raise SuiteError("the suite needs 'tests', a non-empty list of {vars, assert}")
    cases = []
    for i, test in enumerate(tests):
        asserts = test.get("assert") or []
        for j, a in enumerate(asserts):
            kind = a.get("type")
            if kind not in ASSERTIONS:
                raise SuiteError(f"tests[{i}].assert[{j}].type {kind!r} is not supported; use one of "
                                 f"{', '.join(ASSERTIONS)}")
            if kind == "latency" and not isinstance(a.get("threshold"), int | float):
                raise SuiteError(f"tests[{i}].assert[{j}]: latency needs a numeric threshold (milliseconds)")
            if kind in ("equals", "contains", "icontains", "regex") and not isinstance(a.get("value"), str):
                raise SuiteError(f"tests[{i}].assert[{j}]: {kind} needs a string value")
            if kind == "regex":
                try:
                    re.compile(a["value"])
                except re.error as exc:
                    raise SuiteError(f"tests[{i}].assert[{j}]: bad regular expression: {exc}") from None
        variables = test.get("vars") or {}
        for k, template in enumerate(suite["prompts"]):
            prompt = _render(template, variables)
            cases.append(Case(description=test.get("description") or f"tests[{i}] prompt[{k}]", prompt=prompt,
                              asserts=asserts))
    return cases


def _render(template: str, variables: dict[str, Any]) -> str:
    """promptfoo's ``{{var}}`` placeholders filled (a placeholder without a value stays as written)."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(variables.get(m.group(1), m.group(0))), template)


def _json_somewhere(text: str) -> bool:
    decoder = json.JSONDecoder()
    for i, char in enumerate(text):
        if char in "{[":
            try:
                decoder.raw_decode(text, i)
                return True
            except json.JSONDecodeError:
                continue
    return False


def check(assertion: dict[str, Any], output: str, latency_ms: float) -> str | None:
    """None if the assertion holds, else why not."""
    kind, value = assertion["type"], assertion.get("value")
    ok = {
        "equals": lambda: output == value,
        "contains": lambda: value in output,
        "icontains": lambda: value.lower() in output.lower(),
        "regex": lambda: re.search(value, output) is not None,
        "is-json": lambda: _is_json(output),
        "contains-json": lambda: _json_somewhere(output),
        "latency": lambda: latency_ms <= assertion["threshold"],
    }[kind]()
    if ok:
        return None
    if kind == "latency":
        return f"latency {latency_ms:.0f} ms > {assertion['threshold']} ms"
    return f"{kind} {value!r} failed on {output[:80]!r}" if value is not None else f"{kind} failed on {output[:80]!r}"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False


def ask(base_url: str, model: str, prompt: str, timeout_s: float) -> tuple[str, float]:
    """One chat completion (``POST /v1/chat/completions``, temperature 0): the answer's text and milliseconds."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}).encode()
    request = urllib.request.Request(f"{base_url.rstrip('/')}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        answer = json.load(response)
    elapsed = (time.monotonic() - started) * 1000
    content = answer["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise ValueError("choices[0].message.content is not text")
    return content, elapsed


def run(cases: list[Case], base_url: str, model: str, timeout_s: float) -> list[Result]:
    results = []
    for case in cases:
        try:
            output, latency = ask(base_url, model, case.prompt, timeout_s)
        except TimeoutError:
            results.append(Result(case, False, [f"no answer within {timeout_s:g} s"], answered=False))
            continue
        except urllib.error.URLError as exc:
            reason = "timed out" if isinstance(exc.reason, TimeoutError) else exc.reason
            results.append(Result(case, False, [f"request failed: {reason}"], answered=False))
            continue
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            results.append(Result(case, False, [f"malformed answer: {exc!r}"]))
            continue
        failures = [f for a in case.asserts if (f := check(a, output, latency)) is not None]
        results.append(Result(case, not failures, failures))
    return results


def regressions(baseline: list[Result], candidate: list[Result]) -> list[Result]:
    """The candidate's results on the cases the baseline passed and the candidate failed, in suite order."""
    return [c for b, c in zip(baseline, candidate, strict=True) if b.passed and not c.passed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eval_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True, help="the promptfoo-style JSON suite")
    parser.add_argument("--base-url", required=True, help="the version's own Service, e.g. http://m-canary:8000")
    parser.add_argument("--model", required=True, help="the OpenAI model name it serves")
    parser.add_argument("--pass-rate", type=float, default=1.0, help="share of cases that must pass (default 1)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request (default 60)")
    parser.add_argument("--baseline-url", help="compare with this version's Service (the stable one); "
                        "default none: the pass rate alone judges")
    parser.add_argument("--max-regression", type=int, default=0,
                        help="cases the candidate may pass fewer than the baseline (default 0)")
    args = parser.parse_args(argv)
    if args.max_regression < 0:
        print(f"eval: --max-regression must be 0 or more (got {args.max_regression})", file=sys.stderr)
        return 2
    try:
        with open(args.suite, encoding="utf-8") as f:
            cases = load_suite(f.read())
    except (OSError, SuiteError) as exc:
        print(f"eval: {args.suite}: {exc}", file=sys.stderr)
        return 2
    baseline = None
    if args.baseline_url:
        # The baseline first: without it there is nothing to compare, and the candidate need not be asked.
        baseline = run(cases, args.baseline_url, args.model, args.timeout)
        unanswered = [r for r in baseline if not r.answered]
        if unanswered:
            first = unanswered[0]
            print(f"eval: the baseline {args.baseline_url} did not answer {len(unanswered)} of {len(baseline)} "
                  f"cases (first: {first.case.description}: {first.failures[0]}); no comparison was made. Check "
                  "that the stable version is ready and admits the eval pods, then run again.", file=sys.stderr)
            return 2
    results = run(cases, args.base_url, args.model, args.timeout)
    passed = sum(r.passed for r in results)
    rate = passed / len(results)
    for r in results:
        if not r.passed:
            print(f"FAIL {r.case.description}: {'; '.join(r.failures)}")
    print(f"eval: {passed}/{len(results)} cases passed ({rate:.0%}, required {args.pass_rate:.0%})")
    ok = rate >= args.pass_rate
    if baseline is not None:
        for r in regressions(baseline, results):
            print(f"REGRESSED {r.case.description}: passes on the baseline, fails here: {'; '.join(r.failures)}")
        baseline_passed = sum(r.passed for r in baseline)
        worse = baseline_passed - passed
        verdict = f"regressed by {worse}" if worse > 0 else "did not regress"
        print(f"eval: baseline {baseline_passed}/{len(baseline)} cases passed; the candidate {verdict} "
              f"(at most {args.max_regression} allowed)")
        ok = ok and worse <= args.max_regression
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
