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


class _Fake(BaseHTTPRequestHandler):
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
            content = ANSWERS.get(prompt, "slow answer")
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


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
