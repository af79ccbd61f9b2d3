"""An invisible watermark in the luma of every processed frame, and its detector.

Scheme: informed spread spectrum over mid-frequency block-DCT coefficients of the luma,
seen on a canonical 128x128 grid (the frame averaged over 128 x 128 cells, whatever its size
and aspect), carrying a 64-bit id (the task id's first 16 hex digits) with a CRC-16 under a
rate-1/3 convolutional code (``pipeline.ecc``), decoded by soft voting over many frames.

* Luma only, in the encoder's own samples: 4:2:0 coding keeps luma at full resolution
  (a chroma-plane mark loses three quarters of its samples), and the chroma planes pass
  untouched.
* The canonical grid: a rescaled copy (75 %, or any size) averages to the same 128x128
  cells, so the detector needs no search. Each of the 16x16 blocks of 8x8 cells carries,
  in its mid-frequency DCT coefficients (3 <= u + v <= 5), chips of the coded bits: each
  coded bit owns 14 coefficients spread over the picture by a fixed key, with a +-1 chip
  each. On a 720p frame a cell is 10x6 pixels, so the mark lives at wavelengths of 20-100
  pixels, which H.264 at CRF 23 and a downscale keep (it quantises the finer detail first).
* Informed embedding: the embedder measures what the picture already says along each
  coded bit's chips (the host's interference, which on a still scene would be the same in
  every frame and so never vote away) and adds only what brings it to the bit's sign with
  a margin. The change is spread over the frame by bilinear interpolation of the cells
  (no blocky edges), and capped so the frame keeps a luma PSNR of 43 dB against the unmarked
  one.
* Decoding: each frame's coded-bit correlations (scaled by their spread in that frame) are
  summed over the frames read, the Viterbi search finds the message, and the CRC with a
  correlation floor tells a mark from noise, so a cut of a few seconds is enough.

Deterministic: the chips come from SHAKE-256 of a fixed key, and the change made to a
frame depends only on its pixels, so the same input frames give the same marked frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache, lru_cache

import av
import numpy as np
from scipy import sparse

from pipeline import ecc
from pipeline.frames import Frame

KEY = b"facefleet-watermark-v1"
ID_BITS = 64
MESSAGE_BITS = ID_BITS + 16  # the id and its CRC-16
CODED_BITS = ecc.coded_length(MESSAGE_BITS)
CANON = 128  # cells per side of the canonical grid
BLOCK = 8
BAND = (6, 8)  # the DCT coefficients (u, v) with u + v in this range (inclusive) carry chips
MARGIN = 3.0  # what each coded bit's correlation is brought to, in 8-bit luma levels
MAX_STEP = 10.0  # the largest change of one coded bit's chips in one frame (levels)
MIN_PSNR_DB = 43.0
REFINEMENTS = 4  # passes that make up for the interpolation's blur  # the frame's change is scaled down to keep at least this
MIN_CORRELATION = 0.65  # below it a CRC that happens to match is noise, not a mark


@dataclass(frozen=True)
class _Carriers:
    """Where each coded bit lives: ``positions[i]`` indexes the flattened (16, 16, 8, 8)
    block-DCT coefficients, ``chips[i]`` the +-1 signs there."""

    positions: np.ndarray  # (CODED_BITS, per_bit) int
    chips: np.ndarray  # (CODED_BITS, per_bit) float


@cache
def _carriers() -> _Carriers:
    blocks = CANON // BLOCK
    u, v = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    in_band = ((u + v) >= BAND[0]) & ((u + v) <= BAND[1])
    coefficient = np.flatnonzero(in_band.ravel())
    candidates = (np.arange(blocks * blocks)[:, None] * BLOCK * BLOCK + coefficient[None, :]).ravel()
    stream = hashlib.shake_256(KEY).digest(16 * len(candidates))
    order = np.argsort(np.frombuffer(stream[: 8 * len(candidates)], dtype=">u8"), kind="stable")
    per_bit = len(candidates) // CODED_BITS
    positions = candidates[order[: per_bit * CODED_BITS]].reshape(CODED_BITS, per_bit)
    signs = np.frombuffer(stream[8 * len(candidates) : 8 * len(candidates) + positions.size], dtype=np.uint8)
    chips = np.where(signs & 1, 1.0, -1.0).reshape(positions.shape)
    return _Carriers(positions, chips)


@cache
def _dct_matrix() -> np.ndarray:
    n = np.arange(BLOCK)
    matrix = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
    matrix[0] /= np.sqrt(2)
    return matrix


@dataclass(frozen=True)
class _Axis:
    """One axis of a frame against the canonical grid, as sparse matrices (each pixel meets
    a cell or two): ``down`` (CANON, pixels) averages pixels into cells (area weights),
    ``up`` (pixels, CANON) spreads cells back over pixels (bilinear), and ``round_trip``
    (CANON, CANON) is ``down @ up``: a change of the cells spread over the frame and averaged
    back. Sparse products run in scipy's own loops: no BLAS threads, which on a busy host
    (a decoder and an encoder beside them) cost 30x the work in waiting."""

    down: sparse.csr_array
    up: sparse.csr_array
    round_trip: sparse.csr_array


@lru_cache(maxsize=8)
def _axis(pixels: int) -> _Axis:
    scale = pixels / CANON
    starts = np.arange(CANON) * scale
    edges = np.arange(pixels + 1)
    # the overlap of pixel p ([p, p+1)) with cell c ([c*scale, (c+1)*scale)), in cells
    overlap = np.minimum(edges[None, 1:], starts[:, None] + scale) - np.maximum(
        edges[None, :-1], starts[:, None]
    )
    down = np.clip(overlap, 0, None) / scale
    centre = (np.arange(pixels) + 0.5) / scale - 0.5
    low = np.clip(np.floor(centre), 0, CANON - 2).astype(np.intp)
    weight = np.clip(centre - low, 0.0, 1.0)
    up = np.zeros((pixels, CANON))
    up[np.arange(pixels), low] = 1 - weight
    up[np.arange(pixels), low + 1] += weight
    return _Axis(
        sparse.csr_array(down.astype(np.float32)),
        sparse.csr_array(up.astype(np.float32)),
        sparse.csr_array(down @ up),
    )


def _cells(luma: np.ndarray) -> np.ndarray:
    """``luma`` (H, W) averaged into the canonical (CANON, CANON) cells."""
    rows, cols = _axis(luma.shape[0]), _axis(luma.shape[1])
    tall = rows.down @ luma.astype(np.float32)  # (CANON, W)
    return np.asarray((cols.down @ tall.T).T, dtype=np.float64)


def _spread(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (CANON, CANON) ``cells`` interpolated (bilinear) over an (H, W) frame (float32)."""
    rows, cols = _axis(height), _axis(width)
    wide = cols.up @ cells.astype(np.float32).T  # (W, CANON)
    return np.ascontiguousarray(rows.up @ wide.T)


def _round_trip(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """``_cells(_spread(cells))``, computed on the grid."""
    rows, cols = _axis(height).round_trip, _axis(width).round_trip
    return np.asarray((cols @ (rows @ cells).T).T)


def _block_dct(cells: np.ndarray) -> np.ndarray:
    blocks = CANON // BLOCK
    d = _dct_matrix()
    tiles = cells.reshape(blocks, BLOCK, blocks, BLOCK).transpose(0, 2, 1, 3)
    return d @ tiles @ d.T  # (16, 16, 8, 8)


def _block_idct(coefficients: np.ndarray) -> np.ndarray:
    d = _dct_matrix()
    tiles = d.T @ coefficients @ d
    return tiles.transpose(0, 2, 1, 3).reshape(CANON, CANON)


def correlations(luma: np.ndarray) -> np.ndarray:
    """Each coded bit's correlation in one frame's luma (8-bit levels): positive says 1."""
    return _correlations_of_cells(_cells(luma))


def _correlations_of_cells(cells: np.ndarray) -> np.ndarray:
    carriers = _carriers()
    coefficients = _block_dct(cells).ravel()
    return (coefficients[carriers.positions] * carriers.chips).mean(axis=1)


def _chips_image(steps: np.ndarray) -> np.ndarray:
    """The canonical cells that move each coded bit's correlation by ``steps``."""
    carriers = _carriers()
    coefficients = np.zeros((CANON // BLOCK) ** 2 * BLOCK * BLOCK)
    coefficients[carriers.positions] = carriers.chips * steps[:, None]
    return _block_idct(coefficients.reshape(CANON // BLOCK, CANON // BLOCK, BLOCK, BLOCK))


def payload_bits(short_id: str) -> np.ndarray:
    """The coded bits (0/1) that carry ``short_id`` (16 hex digits)."""
    identity = np.unpackbits(np.frombuffer(bytes.fromhex(short_id), dtype=np.uint8))
    return ecc.encode(np.concatenate([identity, ecc.crc16(identity)]))


def short_id(task_id: str) -> str:
    """The 64 bits of a task id the mark carries (its first 16 hex digits)."""
    return task_id[: ID_BITS // 4].lower()


def mark_luma(luma: np.ndarray, coded: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """The change (float32, same shape) that marks ``luma`` (samples up to ``peak``) with
    ``coded``, worked out in 8-bit levels on the canonical grid: the frame's own correlations
    are measured once, the steps refined until the spread change, averaged back, brings each
    coded bit to its wanted correlation, then capped to the frame's PSNR budget (the costly
    bits, where the picture says the opposite most loudly, give way first)."""
    scale = peak / 255.0
    height, width = luma.shape
    signs = 2.0 * coded - 1.0
    measured = _correlations_of_cells(_cells(luma) / scale)
    wanted = signs * np.maximum(MARGIN, signs * measured)  # a host already past the margin stays
    steps = np.zeros(CODED_BITS)
    for _ in range(REFINEMENTS):
        reached = measured + _correlations_of_cells(_round_trip(_chips_image(steps), height, width))
        steps = np.clip(steps + (wanted - reached), -MAX_STEP, MAX_STEP)
    budget = 255.0**2 / 10 ** (MIN_PSNR_DB / 10) - 1 / 12  # the rounding to whole levels costs 1/12
    steps = _within(steps, budget / _energy_per_step(height, width))
    change = _spread(_chips_image(steps), height, width)
    energy = float(np.mean(np.square(change, dtype=np.float64)))
    if energy > budget:  # the estimate's error: the budget holds exactly
        change *= np.float32(np.sqrt(budget / energy))
    return change * np.float32(scale)


def _within(steps: np.ndarray, allowed: float) -> np.ndarray:
    """``steps`` capped at the size that keeps the sum of their squares within ``allowed``."""
    if float(steps @ steps) <= allowed:
        return steps
    sizes = np.sort(np.abs(steps))
    below = np.concatenate([[0.0], np.cumsum(sizes**2)])[:-1]  # what the smaller ones cost
    above = len(sizes) - np.arange(len(sizes))  # steps capped at sizes[i] and beyond
    fits = below + above * sizes**2 <= allowed
    last = int(np.flatnonzero(fits)[-1]) if fits.any() else 0
    cap = np.sqrt(max(0.0, allowed - below[last]) / above[last])
    return np.clip(steps, -cap, cap)


@lru_cache(maxsize=8)
def _energy_per_step(height: int, width: int) -> float:
    """The frame's mean squared change per unit of squared step summed over the coded bits."""
    change = _spread(_chips_image(np.ones(CODED_BITS)), height, width)
    return float(np.mean(np.square(change, dtype=np.float64))) / CODED_BITS


# --- frames ---------------------------------------------------------------------------

_PLANAR_8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
_PLANAR_16 = {"yuv420p10le", "yuv422p10le", "yuv444p10le", "gray10le"}


def _plane(frame: av.VideoFrame, index: int, dtype: type) -> np.ndarray:
    plane = frame.planes[index]
    itemsize = np.dtype(dtype).itemsize
    rows: np.ndarray = np.frombuffer(memoryview(plane), dtype=dtype).reshape(
        plane.height, plane.line_size // itemsize
    )
    return rows[:, : plane.width]


def mark_video_frame(frame: av.VideoFrame, coded: np.ndarray) -> av.VideoFrame:
    """A copy of ``frame`` with its luma marked (a new frame: the decoder's own pictures are
    its reference pictures and are never written to). Other formats (RGB) go through
    4:4:4 first."""
    name = frame.format.name
    if name not in _PLANAR_8 and name not in _PLANAR_16:
        deep = frame.format.components[0].bits > 8
        frame = frame.reformat(format="yuv444p10le" if deep else "yuv444p")
        name = frame.format.name
    dtype, peak = (np.uint16, 1023.0) if name in _PLANAR_16 else (np.uint8, 255.0)
    marked = av.VideoFrame(frame.width, frame.height, name)
    for index in range(len(frame.planes)):
        source = _plane(frame, index, dtype)
        target = _plane(marked, index, dtype)
        if index == 0:
            change = mark_luma(source, coded, peak)
            target[...] = np.clip(np.rint(source + change), 0, peak).astype(dtype)
        else:
            target[...] = source
    marked.color_range = frame.color_range
    marked.colorspace = frame.colorspace
    return marked


class Watermarker:
    """The last processor of a marked job's chain: each frame as the encoder will get it,
    its luma marked with the task's short id."""

    name = "watermark"

    def __init__(self, task_id: str) -> None:
        self._coded = payload_bits(short_id(task_id))

    def process(self, frames: list[Frame]) -> list[Frame]:
        return [
            Frame(f.index, f.pts, video_frame=mark_video_frame(f.to_video_frame(), self._coded))
            for f in frames
        ]

    def mark_image(self, image: np.ndarray) -> np.ndarray:
        """A BGR image as the mark leaves it (its luma marked through 4:4:4)."""
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        return mark_video_frame(frame, self._coded).to_ndarray(format="bgr24")


# --- detection ------------------------------------------------------------------------


def frame_luma(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame's luma in 8-bit levels (float)."""
    name = frame.format.name
    if name in _PLANAR_8:
        return _plane(frame, 0, np.uint8).astype(np.float64)
    if name in _PLANAR_16:
        return _plane(frame, 0, np.uint16).astype(np.float64) / (1023.0 / 255.0)
    return frame.reformat(format="gray").to_ndarray().astype(np.float64)


@dataclass
class Votes:
    """Soft votes of the frames read so far."""

    total: np.ndarray = field(default_factory=lambda: np.zeros(CODED_BITS))
    frames: int = 0

    def add(self, luma: np.ndarray) -> None:
        values = correlations(luma)
        spread = float(np.median(np.abs(values))) or 1.0
        self.total += np.clip(values / spread, -4.0, 4.0)  # one frame is one bounded vote
        self.frames += 1

    def decode(self) -> Detection | None:
        """The id the votes carry, or None when they carry none."""
        if self.frames == 0:
            return None
        message = ecc.decode(self.total)
        identity, check = message[:ID_BITS], message[ID_BITS:]
        if not np.array_equal(ecc.crc16(identity), check):
            return None
        signs = 2.0 * ecc.encode(message).astype(np.float64) - 1.0
        norm = float(np.linalg.norm(self.total)) or 1.0
        correlation = float(signs @ self.total) / (norm * np.sqrt(CODED_BITS))
        if correlation < MIN_CORRELATION:
            return None
        return Detection(np.packbits(identity).tobytes().hex(), correlation, self.frames)


@dataclass(frozen=True)
class Detection:
    short_id: str  # 16 hex digits: the first of the task id's
    correlation: float  # of the frames' votes with the decoded message's code, 0..1
    frames: int  # frames whose votes were counted
