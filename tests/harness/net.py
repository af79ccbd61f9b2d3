"""Ports and polling, shared by every part of the stack: a free port on loopback, waiting
for a condition with a deadline, and whether a URL answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """``predicate()``'s first value that is neither None nor False (0, a chunk index, counts
    as found); an AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False
