"""The watermark's error-correcting code: a CRC-16 to tell a payload from noise, and the
rate-1/3, constraint-length-7 convolutional code (generators 133, 171, 165 octal, as LTE's
control channels use), decoded by a soft-decision Viterbi search.

Soft decisions matter here: the watermark's detector sums correlations over many frames, so
each coded bit arrives as a confidence, not a 0 or 1, and the Viterbi search weighs them.
"""

from __future__ import annotations

import binascii

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
RATE = len(GENERATORS)
_STATES = 1 << (CONSTRAINT - 1)
TAIL = CONSTRAINT - 1


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


def _outputs() -> np.ndarray:
    """outputs[state, bit] -> the RATE code bits emitted when ``bit`` enters ``state``."""
    table = np.zeros((_STATES, 2, RATE), dtype=np.int8)
    for state in range(_STATES):
        for bit in (0, 1):
            register = (bit << (CONSTRAINT - 1)) | state
            table[state, bit] = [_parity(register & g) for g in GENERATORS]
    return table


_OUTPUTS = _outputs()


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT of ``bits`` (a multiple of 8, most significant first), as 16 bits."""
    value = binascii.crc_hqx(np.packbits(bits.astype(np.uint8)).tobytes(), 0)
    return np.unpackbits(np.array([value >> 8, value & 0xFF], dtype=np.uint8))


def coded_length(message_bits: int) -> int:
    return (message_bits + TAIL) * RATE


def encode(bits: np.ndarray) -> np.ndarray:
    """``bits`` (0/1) followed by a zero tail, through the encoder: RATE bits per input bit."""
    state = 0
    out = []
    for bit in [*bits.tolist(), *([0] * TAIL)]:
        out.extend(_OUTPUTS[state, bit].tolist())
        state = ((bit << (CONSTRAINT - 1)) | state) >> 1
    return np.array(out, dtype=np.uint8)


def decode(soft: np.ndarray) -> np.ndarray:
    """The most likely message for ``soft`` (one value per code bit; positive means 1, its
    size the confidence), ending in the zero state (the tail)."""
    steps = len(soft) // RATE
    signs = 2.0 * _OUTPUTS.astype(np.float64) - 1.0  # (state, bit, RATE) as +-1
    # a bit b entering state s leads to (b << 6 | s) >> 1: each state t is reached from
    # (t << 1) & 63 and that | 1, by the bit t >> 5
    targets = np.arange(_STATES)
    entering = targets >> (CONSTRAINT - 2)
    first = (targets << 1) & (_STATES - 1)
    second = first | 1
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choices = np.zeros((steps, _STATES), dtype=np.int64)  # each survivor's previous state
    for step in range(steps):
        gains = signs @ soft[step * RATE : (step + 1) * RATE]  # (state, bit)
        from_first = metric[first] + gains[first, entering]
        from_second = metric[second] + gains[second, entering]
        take_second = from_second > from_first  # ties: the first, so the result is deterministic
        metric = np.where(take_second, from_second, from_first)
        choices[step] = np.where(take_second, second, first)
    state, bits = 0, []
    for step in range(steps - 1, -1, -1):
        bits.append(state >> (CONSTRAINT - 2))  # the bit that entered is the state's top bit
        state = int(choices[step, state])
    return np.array(bits[::-1][: steps - TAIL], dtype=np.uint8)
