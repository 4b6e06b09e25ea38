"""The eval gate's runner against a fake OpenAI-compatible server on loopback: each assertion type passing and
failing, a timeout, malformed answers, and the exit code against the pass rate."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.serving import eval_runner

ANSWERS = {
    "capital": "Paris",
    "json": '{"answer": 42}',
    "wrapped": 'Here you go: {"answer": 42} - done',
    "prose": "The answer is forty-two.",
}


class _Quiet(BaseHTTPRequestHandler):
    """An OpenAI-compatible server's replies, without its access log."""

    def reply(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def _chat(content: str) -> bytes:
    """A chat completion's body with one answer."""
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class _Fake(_Quiet):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions" and body["model"] == "m"
        prompt = body["messages"][0]["content"]
        if prompt == "slow":
            time.sleep(1.0)
        if prompt == "garbage":
            payload = b"<html>not json</html>"
        elif prompt == "nochoices":
            payload = json.dumps({"choices": []}).encode()
        else:
            payload = _chat(ANSWERS.get(prompt, "slow answer"))
        self.reply(payload)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out closed its socket before the slow answer: expected here


@pytest.fixture(scope="module")
def server():
    httpd = _Server(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _one(server: str, prompt: str, assertion: dict, timeout: float = 5) -> eval_runner.Result:
    suite = {"prompts": ["{{q}}"], "tests": [{"vars": {"q": prompt}, "assert": [assertion]}]}
    [result] = eval_runner.run(eval_runner.load_suite(json.dumps(suite)), server, "m", timeout)
    return result


@pytest.mark.parametrize(("prompt", "assertion", "passes"), [
    ("capital", {"type": "equals", "value": "Paris"}, True),
    ("capital", {"type": "equals", "value": "paris"}, False),
    ("prose", {"type": "contains", "value": "forty-two"}, True),
    ("prose", {"type": "contains", "value": "Forty-two"}, False),
    ("prose", {"type": "icontains", "value": "FORTY-TWO"}, True),
    ("prose", {"type": "icontains", "value": "forty-three"}, False),
    ("prose", {"type": "regex", "value": r"forty-\w+\."}, True),
    ("prose", {"type": "regex", "value": r"^\d+$"}, False),
    ("json", {"type": "is-json"}, True),
    ("wrapped", {"type": "is-json"}, False),
    ("wrapped", {"type": "contains-json"}, True),
    ("prose", {"type": "contains-json"}, False),
    ("capital", {"type": "latency", "threshold": 800}, True),
    ("slow", {"type": "latency", "threshold": 500}, False),
])
def test_each_assertion_type_passes_and_fails(server, prompt, assertion, passes):
    result = _one(server, prompt, assertion)
    assert result.passed is passes, result.failures
    assert bool(result.failures) is not passes


def test_a_request_past_its_timeout_fails_the_case(server):
    result = _one(server, "slow", {"type": "contains", "value": "slow"}, timeout=0.2)
    assert not result.passed
    assert "no answer within 0.2 s" in result.failures[0] or "timed out" in result.failures[0]


@pytest.mark.parametrize("prompt", ["garbage", "nochoices"])
def test_a_malformed_answer_fails_the_case(server, prompt):
    result = _one(server, prompt, {"type": "contains", "value": "x"})
    assert not result.passed and result.failures[0].startswith("malformed answer")


def test_an_unreachable_server_fails_the_case():
    result = _one("http://127.0.0.1:1", "capital", {"type": "equals", "value": "Paris"}, timeout=2)
    assert not result.passed and result.failures[0].startswith("request failed")


@pytest.mark.parametrize(("suite", "words"), [
    ({"prompts": ["x"], "tests": [{"assert": [{"type": "llm-rubric", "value": "x"}]}]}, "not supported"),
    ({"prompts": ["x"], "tests": [{"assert": [{"type": "latency"}]}]}, "threshold"),
    ({"prompts": ["x"], "tests": [{"assert": [{"type": "regex", "value": "("}]}]}, "regular expression"),
    ({"prompts": [], "tests": [{}]}, "prompts"),
    ({"prompts": ["x"]}, "tests"),
])
def test_a_suite_promptfoo_would_read_differently_is_refused(suite, words):
    with pytest.raises(eval_runner.SuiteError, match=words):
        eval_runner.load_suite(json.dumps(suite))


def test_main_exits_by_the_pass_rate_and_names_the_failing_cases(server, tmp_path: Path, capsys):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"prompts": ["{{q}}"], "tests": [
        {"description": "capital", "vars": {"q": "capital"}, "assert": [{"type": "equals", "value": "Paris"}]},
        {"description": "wrong", "vars": {"q": "prose"}, "assert": [{"type": "is-json"}]},
    ]}))
    args = ["--suite", str(suite), "--base-url", server, "--model", "m"]
    assert eval_runner.main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong: is-json failed" in out and "FAIL capital" not in out and "1/2" in out
    assert eval_runner.main([*args, "--pass-rate", "0.5"]) == 0
    (tmp_path / "bad.json").write_text("{")
    assert eval_runner.main(["--suite", str(tmp_path / "bad.json"), "--base-url", server, "--model", "m"]) == 2


# The regression gate: the same suite asked of a baseline (the stable version) and a candidate, two fake servers.

def _answering(answers: dict[str, str], asked: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(_Quiet):
        def do_POST(self) -> None:
            prompt = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][0]["content"]
            asked.append(prompt)
            self.reply(_chat(answers[prompt]))

    return Handler


@pytest.fixture
def pair():
    """Start a server per answer table; yields a function (answers) -> (base URL, the prompts it was asked)."""
    started: list[ThreadingHTTPServer] = []

    def start(answers: dict[str, str]) -> tuple[str, list[str]]:
        asked: list[str] = []
        httpd = _Server(("127.0.0.1", 0), _answering(answers, asked))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", asked

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


RIGHT = {"capital": "Paris", "sum": "4", "colour": "blue"}


@pytest.fixture
def compared_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"prompts": ["{{q}}"], "tests": [
        {"description": "capital", "vars": {"q": "capital"}, "assert": [{"type": "equals", "value": "Paris"}]},
        {"description": "sum", "vars": {"q": "sum"}, "assert": [{"type": "equals", "value": "4"}]},
        {"description": "colour", "vars": {"q": "colour"}, "assert": [{"type": "icontains", "value": "BLUE"}]},
    ]}))
    return suite


def _compare(suite: Path, candidate: str, baseline: str, *extra: str) -> int:
    return eval_runner.main(["--suite", str(suite), "--base-url", candidate, "--baseline-url", baseline,
                             "--model", "m", "--pass-rate", "0.5", "--timeout", "2", *extra])


def test_a_candidate_failing_what_the_baseline_passes_is_a_regression_naming_the_case(pair, compared_suite, capsys):
    baseline, _ = pair(RIGHT)
    candidate, _ = pair({**RIGHT, "sum": "5"})
    # 2/3 meets the 0.5 pass rate alone; the comparison is what fails it.
    assert _compare(compared_suite, candidate, baseline) == 1
    out = capsys.readouterr().out
    assert "REGRESSED sum: passes on the baseline, fails here: equals '4' failed on '5'" in out
    assert "REGRESSED capital" not in out and "REGRESSED colour" not in out
    assert "baseline 3/3" in out and "regressed by 1" in out


def test_a_regression_within_the_tolerance_passes(pair, compared_suite, capsys):
    baseline, _ = pair(RIGHT)
    candidate, _ = pair({**RIGHT, "sum": "5"})
    assert _compare(compared_suite, candidate, baseline, "--max-regression", "1") == 0
    assert "REGRESSED sum" in capsys.readouterr().out
    worse, _ = pair({**RIGHT, "sum": "5", "capital": "Lyon"})
    assert _compare(compared_suite, worse, baseline, "--max-regression", "1", "--pass-rate", "0.3") == 1


def test_an_equal_result_passes_even_when_both_fail_a_case(pair, compared_suite, capsys):
    both = {**RIGHT, "colour": "green"}
    baseline, _ = pair(both)
    candidate, _ = pair(both)
    assert _compare(compared_suite, candidate, baseline) == 0
    out = capsys.readouterr().out
    assert "REGRESSED" not in out and "FAIL colour" in out and "did not regress" in out


def test_a_candidate_better_than_the_baseline_passes(pair, compared_suite, capsys):
    baseline, _ = pair({**RIGHT, "capital": "Lyon", "sum": "5"})
    candidate, _ = pair(RIGHT)
    assert _compare(compared_suite, candidate, baseline) == 0
    out = capsys.readouterr().out
    assert "REGRESSED" not in out and "baseline 1/3" in out and "3/3 cases passed" in out


def test_the_pass_rate_still_applies_when_comparing(pair, compared_suite):
    wrong = {"capital": "Lyon", "sum": "5", "colour": "red"}
    baseline, _ = pair(wrong)
    candidate, _ = pair(wrong)
    assert _compare(compared_suite, candidate, baseline) == 1


def test_an_unreachable_baseline_exits_2_without_asking_the_candidate(pair, compared_suite, capsys):
    candidate, asked = pair(RIGHT)
    assert _compare(compared_suite, candidate, "http://127.0.0.1:1") == 2
    captured = capsys.readouterr()
    assert "the baseline http://127.0.0.1:1 did not answer 3 of 3 cases" in captured.err
    assert "no comparison was made" in captured.err
    assert asked == []


def test_a_negative_tolerance_is_refused(pair, compared_suite, capsys):
    baseline, _ = pair(RIGHT)
    assert _compare(compared_suite, baseline, baseline, "--max-regression", "-1") == 2
    assert "--max-regression must be 0 or more" in capsys.readouterr().err
