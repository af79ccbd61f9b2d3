"""The face selector's names, as FaceFusion 3's users know them (no numpy: the options and the
CLI's flags read them)."""

from __future__ import annotations

from typing import Literal, get_args

SelectorMode = Literal["many", "one", "reference"]
SelectorOrder = Literal[
    "left-right",
    "right-left",
    "top-bottom",
    "bottom-top",
    "small-large",
    "large-small",
    "best-worst",
    "worst-best",
]
SELECTOR_MODES: tuple[str, ...] = get_args(SelectorMode)
SELECTOR_ORDERS: tuple[str, ...] = get_args(SelectorOrder)
