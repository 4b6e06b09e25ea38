"""The rollback relay: receives Alertmanager's webhook message and asks GitHub to start the rollback workflow.

Why a relay: Alertmanager's webhook posts its own JSON message and ``webhook_config`` cannot shape the body (v0.31.1
``config/notifiers.go:637-654``, ``notify/webhook/webhook.go`` ``Message``), while GitHub's "Create a repository
dispatch event" (``POST /repos/{owner}/{repo}/dispatches``, docs.github.com/en/rest/repos/repos#create-a-repository-
dispatch-event) requires a body with ``event_type`` (1-100 characters) and takes an optional ``client_payload``
object, answering 204. So this process is the one hop between them: for each firing alert that asks for a rollback
(label ``rollback="canary"``) it sends one dispatch with ``event_type`` ``canary-rollback`` and ``client_payload``
``{"stack", "model", "alert", "slo"}``; ``.github/workflows/rollout-rollback.yaml`` runs on it.

Standard library only, like the eval runner: it runs from the pinned Python image with nothing installed. The token
is read from a file (the receivers' Secret, mounted) at each request, so a rotated token needs no restart and never
sits in an environment variable. Answers Alertmanager 200 when every dispatch was accepted, 502 otherwise, so
Alertmanager retries (its notifier retries a failed webhook until the group's next flush).

Only a caller with the shared secret in ``CALLER_FILE`` is heard (``Authorization: Bearer <it>``, which Alertmanager's
webhook sends from the same file: ``http_config.authorization.credentials_file``); anyone else gets 401, whatever the
network lets through.

Environment: ``GITHUB_REPOSITORY`` (owner/name), ``NEURODOCK_STACK``, ``TOKEN_FILE``, ``CALLER_FILE``, ``GITHUB_API``
(default ``https://api.github.com``), ``PORT`` (default 8080).
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENT_TYPE = "canary-rollback"
"""The ``repository_dispatch`` type the rollback workflow listens for."""
ROLLBACK = ("rollback", "canary")
"""The label (``components.monitoring.alerts.ROLLBACK_LABEL``) of an alert asking for a rollback."""
STACK_MODEL = "neurodock_model"
"""The label naming the model as the stack file does (``alerts.STACK_MODEL_LABEL``)."""


def dispatches(message: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    """One dispatch body per model whose canary a firing alert of the message asks to roll back."""
    out: dict[str, dict[str, Any]] = {}
    for alert in message.get("alerts") or []:
        labels = alert.get("labels") or {}
        if alert.get("status") != "firing" or labels.get(ROLLBACK[0]) != ROLLBACK[1] or not labels.get(STACK_MODEL):
            continue
        model = labels[STACK_MODEL]
        out.setdefault(model, {"event_type": EVENT_TYPE, "client_payload": {
            "stack": stack, "model": model, "alert": labels.get("alertname", ""), "slo": labels.get("slo", "")}})
    return list(out.values())


def send(api: str, repository: str, token: str, body: dict[str, Any], timeout_s: float = 10) -> int:
    """POST one dispatch; GitHub's status code (204 accepted)."""
    request = urllib.request.Request(
        f"{api.rstrip('/')}/repos/{repository}/dispatches", data=json.dumps(body).encode(), method="POST",
        headers={"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                 "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json",
                 "User-Agent": "neurodock-rollback-relay"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Relay(BaseHTTPRequestHandler):
    api = "https://api.github.com"
    repository = ""
    stack = ""
    token_file = ""
    caller_file = ""

    def do_POST(self) -> None:
        try:
            with open(self.caller_file, encoding="utf-8") as f:
                expected = f"Bearer {f.read().strip()}"
        except OSError as exc:
            self._answer(500, f"cannot read the caller's secret: {exc.strerror}")
            return
        if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected.encode()):
            self._answer(401, "not Alertmanager")
            return
        try:
            message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:  # json.JSONDecodeError among them
            self._answer(400, "not JSON")
            return
        bodies = dispatches(message, self.stack)
        try:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            self._answer(500, f"cannot read the token: {exc.strerror}")
            return
        failed = []
        for body in bodies:
            try:
                status = send(self.api, self.repository, token, body)
            except (urllib.error.URLError, TimeoutError) as exc:
                status, reason = 0, str(exc)
            else:
                reason = f"HTTP {status}"
            print(f"relay: dispatch {body['client_payload']['model']} -> {reason}", file=sys.stderr, flush=True)
            if status != 204:
                failed.append(f"{body['client_payload']['model']}: {reason}")
        self._answer(502 if failed else 200, "; ".join(failed) or f"{len(bodies)} dispatched")

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/healthz" else 404, "ok" if self.path == "/healthz" else "not found")

    def _answer(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("", port), Relay)


def main() -> int:
    missing = [k for k in ("GITHUB_REPOSITORY", "NEURODOCK_STACK", "TOKEN_FILE", "CALLER_FILE")
               if not os.environ.get(k)]
    if missing:
        print(f"relay: set {', '.join(missing)}", file=sys.stderr)
        return 2
    Relay.api = os.environ.get("GITHUB_API", Relay.api)
    Relay.repository = os.environ["GITHUB_REPOSITORY"]
    Relay.stack = os.environ["NEURODOCK_STACK"]
    Relay.token_file = os.environ["TOKEN_FILE"]
    Relay.caller_file = os.environ["CALLER_FILE"]
    serve(int(os.environ.get("PORT", "8080"))).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
