"""The smoke test's program: one real chat completion per model, through the gateway.

Runs in the smoke-test Job (standard library only; the component mounts this file). For each
model it sends a short chat completion and checks the answer is a well-formed OpenAI response from
that model; it retries until a deadline, since a freshly attached route or a replica that has just
become ready may take a moment to answer. Models are asked side by side: a model scaled to zero is
woken by the request itself, which the gateway holds until a replica is ready, so its first answer
may take as long as its wake (``WAKE_SECONDS``). Exit status 0 when every model answered, 1
otherwise, so the Job fails and ``pulumi up`` with it.

Environment: ``GATEWAY_URL`` (base URL ending in ``/v1``), ``MODELS`` (JSON list of served
names), optional ``API_KEY``, ``CA_FILE`` (HTTPS), ``DEADLINE_SECONDS`` (default 600),
``WAKE_SECONDS`` (JSON object of served name to the longest a request may be held while it wakes).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PROMPT = "Reply with the single word: ready"
MAX_TOKENS = 16
ANSWER_S = 120
"""How long one answer may take once a replica has it."""


def problem(model: str, status: int, payload: object) -> str | None:
    """What is wrong with an answer, or None when it is a well-formed completion from ``model``."""
    if status != 200:
        return f"HTTP {status}: {json.dumps(payload)[:300]}"
    if not isinstance(payload, dict):
        return "the answer is not a JSON object"
    if payload.get("object") != "chat.completion":
        return f"object is {payload.get('object')!r}, not 'chat.completion'"
    if payload.get("model") != model:
        return f"answered by model {payload.get('model')!r}, not {model!r}: the route is wrong"
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "no choices in the answer"
    message = choices[0].get("message")
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return "the first choice has no assistant message"
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return "the assistant message is empty"
    usage = payload.get("usage")
    if not isinstance(usage, dict) or not isinstance(usage.get("completion_tokens"), int) \
            or usage["completion_tokens"] < 1:
        return "usage.completion_tokens is missing or zero"
    return None


def ask(base_url: str, model: str, api_key: str | None, context: ssl.SSLContext | None,
        timeout_s: float = ANSWER_S) -> tuple[int, object]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}],
                       "max_tokens": MAX_TOKENS, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(f"{base_url}/chat/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    if not ca_file:
        return None
    context = ssl.create_default_context(cafile=ca_file)
    # The certificate names the public host, not the in-cluster Service the test calls; the chain
    # is still verified, against the gateway's own certificate.
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def check(base_url: str, model: str, api_key: str | None, context: ssl.SSLContext | None, deadline: float,
          wake_s: float = 0, pause_s: float = 10) -> bool:
    """Ask ``model`` until it answers well or the deadline passes."""
    while True:
        try:
            status, payload = ask(base_url, model, api_key, context, timeout_s=wake_s + ANSWER_S)
            wrong = problem(model, status, payload)
        except (OSError, ValueError) as error:
            wrong = f"{type(error).__name__}: {error}"
        if wrong is None:
            print(f"ok   {model}", flush=True)
            return True
        if time.monotonic() + pause_s > deadline:
            print(f"FAIL {model}: {wrong}", flush=True)
            return False
        print(f"wait {model}: {wrong}", flush=True)
        time.sleep(pause_s)


def main(environ: dict[str, str] | None = None, pause_s: float = 10) -> int:
    env = dict(os.environ if environ is None else environ)
    base_url = env["GATEWAY_URL"].rstrip("/")
    models = json.loads(env["MODELS"])
    wake = json.loads(env.get("WAKE_SECONDS") or "{}")
    api_key = env.get("API_KEY") or None
    context = tls_context(env.get("CA_FILE"))
    deadline = time.monotonic() + float(env.get("DEADLINE_SECONDS", "600"))
    with ThreadPoolExecutor(max_workers=max(1, len(models))) as pool:
        answered = list(pool.map(lambda m: check(base_url, m, api_key, context, deadline, wake.get(m, 0), pause_s),
                                 models))
    failed = [m for m, ok in zip(models, answered, strict=True) if not ok]
    if failed:
        print(f"{len(failed)} of {len(models)} models did not answer through the gateway: {', '.join(failed)}")
        return 1
    print(f"all {len(models)} models answered through the gateway")
    return 0


if __name__ == "__main__":
    sys.exit(main())
