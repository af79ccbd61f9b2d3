"""The shape of untrusted input, checked where it enters (the API's edge, ``facefleet run``):
text without NUL or other control characters and within the column it is stored in, JSON
bounded in depth and in the size of its numbers. Whatever fails is an ``InvalidSubmission``
(a 400 problem) whose message names the field, never a database error later."""

from __future__ import annotations

import json
import re
from typing import Any

from facefleet.config.errors import InvalidSubmission

MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 20  # beyond any option's range; a 5000-digit number costs CPU to convert
# C0 controls and DEL; tab, newline and carriage return are refused too (no name holds them)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_character(value: str) -> str | None:
    """The first control character in ``value`` (as ``\\x00``), or None."""
    found = _CONTROL.search(value)
    return None if found is None else repr(found.group())[1:-1]


def check_text(value: str, what: str, max_length: int) -> str:
    """``value`` when it has no control character and at most ``max_length`` characters."""
    bad = control_character(value)
    if bad is not None:
        raise InvalidSubmission(f"{what} contains a control character ({bad})")
    if len(value) > max_length:
        raise InvalidSubmission(f"{what} is longer than {max_length} characters")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"a number of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str | bytes, what: str) -> Any:
    """Parse untrusted JSON: numbers of at most MAX_INTEGER_DIGITS digits, no NaN or
    Infinity, at most MAX_JSON_DEPTH levels of nesting."""
    if _depth_exceeds(text, MAX_JSON_DEPTH):
        raise InvalidSubmission(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(f"{what} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # our hooks, a body not in UTF-8
        raise InvalidSubmission(f"{what} is not valid JSON: {exc}") from None


def _depth_exceeds(text: str | bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (checked before parsing:
    the parser recurses once per level)."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False
