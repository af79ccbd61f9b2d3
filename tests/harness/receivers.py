"""A webhook receiver on loopback for the tests: it verifies each request's Standard Webhooks
signature with the tenant's secrets (the ``standardwebhooks`` library, as a receiver would),
records what came, and answers as told (500 for the first N, slowly, or holding a request)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]  # the secrets whose signature matched
    status: int  # what the receiver answered (0: not yet, or never: held while its sender died)

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    delay_s: float = 0.0  # sleep this long before answering
    hold: threading.Event | None = None  # the first request waits for this before answering
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()
        self.arrived = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = []
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified.append(secret)
                    except WebhookVerificationError:
                        pass
                with receiver._lock:
                    first = not receiver.received
                    status = 500 if len(receiver.received) < receiver.fail_first else 200
                    if not verified and receiver.secrets:
                        status = 401
                    record = Received(headers.get("webhook-id", ""), headers, body, verified, 0)
                    receiver.received.append(record)
                receiver.arrived.set()
                if first and receiver.hold is not None:
                    receiver.hold.wait(120)
                    return  # its sender is gone: nothing is acknowledged
                time.sleep(receiver.delay_s)
                record.status = status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{self.host}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, *, acknowledged: bool = False) -> list[Received]:
        with self._lock:
            return [r for r in self.received if not acknowledged or r.status == 200]

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
