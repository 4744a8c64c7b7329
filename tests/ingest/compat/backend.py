"""A backend that reports to obsd with the real Python sentry-sdk: run by tests/ingest/test_compat_clients.py.

    python tests/ingest/compat/backend.py http://KEY@127.0.0.1:PORT/42

Prints one JSON line: the event ids the SDK assigned and the transport's compression.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk


def divide_order_total(total: float, parts: int) -> float:
    """A bug: an order with no parts divides by zero."""
    return total / parts


def checkout(order: dict[str, float]) -> float:
    """Calls into the bug two frames deep, like a request handler would."""
    return divide_order_total(order["total"], int(order["parts"]))


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], release="backend@1.0.0", environment="staging", send_default_pii=False)
    sentry_sdk.set_tag("component", "checkout")
    sentry_sdk.set_user({"id": "user-42", "email": "jane@example.com", "ip_address": "203.0.113.9"})
    sentry_sdk.start_session()
    ids = {}
    try:
        checkout({"total": 99.5, "parts": 0})
    except ZeroDivisionError:
        ids["exception"] = sentry_sdk.capture_exception()
    ids["message"] = sentry_sdk.capture_message("payment retry exhausted", level="warning")
    sentry_sdk.end_session()
    sentry_sdk.flush(timeout=10)
    client = sentry_sdk.get_client()
    algo = getattr(client.transport, "_compression_algo", None)
    print(json.dumps({"ids": ids, "compression": algo}))


if __name__ == "__main__":
    main()
