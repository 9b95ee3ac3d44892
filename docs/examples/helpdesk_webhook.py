"""A help desk's webhook, forwarded to the lifecycle API as `ticket.opened` / `ticket.closed`,
and a task solved in the help desk as `POST /v1/tasks/{id}:complete`.

Standard library only, so it can be copied next to any help desk integration. The help desk
POSTs JSON like

    {"type": "ticket.opened",
     "ticket": {"id": "HD-1", "subject": "Leaking tap", "requester": {"external_id": "cust-1042"}}}

with the shared secret in `X-Helpdesk-Secret`; this receiver turns it into
POST /v1/events and answers with the API's status code and body, so the help desk's own
retry logic sees 5xx (retry later) and 4xx (do not retry) as the API meant them. The
idempotency key is derived from the ticket, so a retried delivery is acted on once.

Tasks go both ways. The lifecycle's task webhook (LIFECYCLE_TASKS=webhook) POSTs each task to
the help desk with its `task_id`, role, due time, `outcomes` and the JSON Schema of its
`fields`; the help desk keeps `task_id` as the ticket's external id and, when an agent solves it,
sends

    {"type": "task.solved",
     "task": {"external_id": "lifecycle/cust-1042/delivery_check_in/2/call", "outcome": "reached",
              "fields": {"battery_interest": true}, "agent": "sam@example.com"}}

which this receiver forwards as POST /v1/tasks/{external_id}:complete.

    LIFECYCLE_API_URL=http://127.0.0.1:8000 LIFECYCLE_API_TOKEN=... HELPDESK_SECRET=... \\
        python docs/examples/helpdesk_webhook.py          # listens on 127.0.0.1:$PORT (8081)
"""

from __future__ import annotations

import hmac
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_URL = os.environ.get("LIFECYCLE_API_URL", "http://127.0.0.1:8000").rstrip("/")
API_TOKEN = os.environ.get("LIFECYCLE_API_TOKEN", "")
SECRET = os.environ.get("HELPDESK_SECRET", "")
MAX_BODY = 256 * 1024


def to_event(delivery: dict[str, Any]) -> dict[str, Any] | None:
    """The lifecycle event for a help desk delivery, or None for deliveries we do not forward."""
    kind = delivery.get("type")
    ticket = delivery.get("ticket") or {}
    customer = (ticket.get("requester") or {}).get("external_id")
    if kind not in ("ticket.opened", "ticket.closed") or not customer or not ticket.get("id"):
        return None
    data: dict[str, Any] = {"ticket_id": str(ticket["id"])}
    if kind == "ticket.opened" and ticket.get("subject"):
        data["subject"] = str(ticket["subject"])
    if kind == "ticket.closed" and "solved" in ticket:
        data["resolved"] = bool(ticket["solved"])
    return {"customer_id": str(customer), "event": kind, "data": data,
            # One key per ticket and event type: the help desk's retries are duplicates.
            "idempotency_key": f"helpdesk:{kind}:{ticket['id']}"}


def to_completion(delivery: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
    """The API path, body and idempotency key completing the task a help desk agent solved."""
    task = delivery.get("task") or {}
    task_id = task.get("external_id")
    if delivery.get("type") != "task.solved" or not isinstance(task_id, str) or not task_id:
        return None
    body: dict[str, Any] = {"fields": task.get("fields") or {}}
    if task.get("outcome"):
        body["outcome"] = str(task["outcome"])
    if task.get("agent"):
        body["by"] = str(task["agent"])
    path = "/v1/tasks/" + urllib.parse.quote(task_id, safe="/:@") + ":complete"
    return path, body, f"helpdesk:task.solved:{task_id}"


def forward(event: dict[str, Any], path: str = "/v1/events", key: str | None = None) -> tuple[int, bytes]:
    """POST to the lifecycle API; its status code and body, or 502 when unreachable."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(f"{API_URL}{path}", data=json.dumps(event).encode(), method="POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        return 502, json.dumps({"error": {"code": "api_unreachable", "message": str(error)}}).encode()


class Receiver(BaseHTTPRequestHandler):
    """POST /helpdesk: check the secret, translate, forward."""

    def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
        if self.path != "/helpdesk":
            return self._answer(404, b'{"error": {"code": "not_found", "message": "POST /helpdesk"}}')
        if not hmac.compare_digest(self.headers.get("X-Helpdesk-Secret", "").encode(), SECRET.encode()):
            return self._answer(401, b'{"error": {"code": "unauthorized", "message": "bad secret"}}')
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._answer(413, b'{"error": {"code": "body_too_large", "message": "too large"}}')
        try:
            delivery = json.loads(self.rfile.read(length))
        except ValueError:
            return self._answer(400, b'{"error": {"code": "invalid_json", "message": "not JSON"}}')
        if not isinstance(delivery, dict):
            return self._answer(202, b'{"status": "ignored"}')
        completion = to_completion(delivery)
        if completion is not None:
            path, body, key = completion
            return self._answer(*forward(body, path, key))
        event = to_event(delivery)
        if event is None:
            return self._answer(202, b'{"status": "ignored"}')
        self._answer(*forward(event))

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the help desk's payloads may hold personal data: log nothing by default


def main() -> None:
    """Serve until interrupted."""
    if not API_TOKEN or not SECRET:
        raise SystemExit("set LIFECYCLE_API_TOKEN and HELPDESK_SECRET")
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8081"))),
                                 Receiver)
    print(f"forwarding help desk webhooks from http://{server.server_address[0]}:{server.server_address[1]}"
          f"/helpdesk to {API_URL}/v1/events", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
