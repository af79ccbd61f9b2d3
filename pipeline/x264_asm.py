"""Which of x264's assembly x264 may run: all of it but its AVX-512 functions.

x264's AVX-512 ``mbtree_propagate_list`` (MB-tree, x264 core 165) takes a row of
macroblocks eight at a time and does not stop at the row's end. In the last row of a
picture whose width is not a multiple of 8 macroblocks (128 pixels), it reads up to seven
entries past the frame's cost and motion-vector arrays, into padding and arrays that x264
never writes (uninitialised heap memory), and adds what it finds there to the last
macroblocks' propagate costs. Their quantiser then depends on what the heap held before the
encoder started: the same frames gave different bytes now and then, more often when two
encoders allocate at once or other threads churn the heap. (Seen as one 160x90 segment of a
resumed run whose last macroblock was coded at QP 13-20 instead of 26; reproduced at will by
filling freed heap memory with 0xFF before an encode: tests/pipeline/test_identity.py.)

Its AVX2 functions stop at the row's end, so on a CPU with AVX-512 x264 is given the
AVX2 set (which every AVX-512 CPU has) instead of its own detection. Elsewhere x264
detects its CPU as usual. On Linux only (the flags come from ``/proc/cpuinfo``).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# the CPU flags (as Linux names them) that make x264 choose its AVX-512 functions
_X264_AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
# x264's names for everything up to AVX2 (SSE to SSE4.2, AVX, FMA3, AVX2, LZCNT, BMI1, BMI2):
# what it detects itself on such a CPU, less AVX-512
AVX2_SET = "AVX2,BMI2"
_CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def x264_asm() -> str | None:
    """The value for x264's ``asm`` parameter, or None to let x264 detect its CPU."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return AVX2_SET if _cpu_flags() >= _X264_AVX512 else None


def _cpu_flags() -> frozenset[str]:
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()
