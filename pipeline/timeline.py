"""The stitch's timeline: the span of the source it writes, and the integer clock its
packets are ordered and cut by."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Span:
    """Frames [start, end) of the source, from ``t0`` to ``t1`` seconds, written ``shift``
    seconds earlier than in the source."""

    start: int
    end: int
    t0: Fraction
    t1: Fraction
    shift: Fraction


class Clock:
    """Times as integer ticks of ``1/rate`` s, ``rate`` a common multiple of the time bases in
    play: the packets' merge keys and range checks then compare integers, not a ``Fraction``
    made per packet (half the stitch's Python time on a long video). A time base that does
    not divide it still gets exact, if slower, ``Fraction`` ticks."""

    def __init__(self, time_bases: Iterable[Fraction | None]) -> None:
        self.rate = math.lcm(*(Fraction(t).denominator for t in time_bases if t))

    def per(self, time_base: Fraction) -> int | Fraction:
        """Ticks per unit of ``time_base``."""
        ticks = Fraction(time_base) * self.rate
        return ticks.numerator if ticks.denominator == 1 else ticks

    def whole(self, time_base: Fraction) -> int:
        """Ticks per unit of a time base the clock was made with (always a whole number)."""
        ticks = self.per(time_base)
        if not isinstance(ticks, int):
            raise ValueError(f"time base {time_base} is not one of the clock's")
        return ticks

    def ceil(self, seconds: Fraction) -> int:
        """The first tick at or after ``seconds``."""
        return math.ceil(seconds * self.rate)


Key = int | Fraction  # a time in ticks of a Clock
