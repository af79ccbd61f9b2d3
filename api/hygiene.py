"""The request's own text (path and query) checked before any view or query sees it: a NUL
or other control character is a 400 problem here, never a database error later. Bodies are
checked where they are read (``facefleet.config.inputs``)."""

from __future__ import annotations

from flask import request

from api.problems import Problem
from facefleet.config.inputs import control_character


def check_request_text() -> None:
    bad = control_character(request.path)
    if bad is not None:
        raise Problem(400, f"the path contains a control character ({bad})", "invalid-characters")
    for name, value in request.args.items(multi=True):
        bad = control_character(name) or control_character(value)
        if bad is not None:
            raise Problem(
                400,
                f"the query parameter {name[:64]!r} contains a control character ({bad})",
                "invalid-characters",
            )
