"""The quality gate's measures on sampled frames, as the user receives them.

A sampled frame is compared as it came out of the stored segment (decoded back, so the
compression counts) with the input frame it was made from:

* identity similarity: the recogniser's embedding of each swapped face (the output face at
  the place of a face the processors chose in the input) against the source identity;
* PSNR outside the faces: the squared error over every pixel outside the detected faces
  (with ``FACE_MARGIN``, the reach of a paste-back) against the input frame;
* face coverage: whether the gate's detector finds a face in the output frame at all (the
  anonymiser's gate is the reverse: it must find none, with a different detector than the
  one that chose the boxes).

``Figures`` add up (segments into a chunk, chunks into a task, tasks into a batch) and are
stored as JSON; ``summarise`` turns them into the reported
``{id_similarity: {mean, p05, min, samples}, psnr_outside_db, face_coverage, passed, reasons}``.
The same frames and models give the same figures (every measure is deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.frames import Frame

if TYPE_CHECKING:  # numpy is imported where pixels are measured: settings and `none` jobs never need it
    import numpy as np

# the pasted crop (inswapper's, GFPGAN's, the anonymiser's margin) reaches this far beyond
# the detected box, per side, in box sizes: everything farther must be unchanged
FACE_MARGIN = 1.2
# an output face counts as the swapped one when its box overlaps the input face's this much
MATCH_IOU = 0.3
SIMILARITY_DIGITS = 6  # stored figures are rounded, so JSON round trips compare equal
PEAK = 255.0
P05 = 5.0


@dataclass(frozen=True)
class Thresholds:
    min_id_similarity: float = 0.85
    min_psnr_db: float = 30.0


@dataclass
class Figures:
    """What the sampled frames of a segment, chunk, task or batch measured."""

    samples: int = 0  # sampled frames
    with_face: int = 0  # of them, output frames where the gate's detector found a face
    similarities: list[float] = field(default_factory=list)  # one per swapped face found
    squared_error: float = 0.0  # outside the faces, summed over pixels and channels
    values: int = 0  # pixel values that sum counts
    reverse: bool = False  # the anonymiser's gate: a face found is a failure

    def add(self, other: Figures) -> Figures:
        self.samples += other.samples
        self.with_face += other.with_face
        self.similarities.extend(other.similarities)
        self.squared_error += other.squared_error
        self.values += other.values
        self.reverse = self.reverse or other.reverse
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "with_face": self.with_face,
            "similarities": [round(float(s), SIMILARITY_DIGITS) for s in self.similarities],
            "squared_error": float(self.squared_error),
            "values": self.values,
            "reverse": self.reverse,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figures:
        return cls(
            samples=int(data.get("samples", 0)),
            with_face=int(data.get("with_face", 0)),
            similarities=[float(s) for s in data.get("similarities", [])],
            squared_error=float(data.get("squared_error", 0.0)),
            values=int(data.get("values", 0)),
            reverse=bool(data.get("reverse", False)),
        )


def total(figures: Iterable[Figures]) -> Figures:
    result = Figures()
    for part in figures:
        result.add(part)
    return result


def psnr_db(squared_error: float, values: int) -> float | None:
    """PSNR of 8-bit values from their summed squared error (None: nothing compared; inf: equal)."""
    if values <= 0:
        return None
    if squared_error <= 0:
        return math.inf
    return 10.0 * math.log10(PEAK**2 / (squared_error / values))


def _rounded(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return value if value is None else round(99.0, digits)  # equal frames: report 99 dB
    return round(float(value), digits)


def summarise(figures: Figures, thresholds: Thresholds) -> dict[str, Any]:
    """The reported quality of ``figures``: the measures, and whether they pass ``thresholds``."""
    import numpy as np

    similarities = np.asarray(figures.similarities, dtype=np.float64)
    identity: dict[str, Any] = {"mean": None, "p05": None, "min": None, "samples": int(similarities.size)}
    if similarities.size:
        identity.update(
            mean=_rounded(float(similarities.mean())),
            p05=_rounded(float(np.percentile(similarities, P05))),
            min=_rounded(float(similarities.min())),
        )
    psnr = psnr_db(figures.squared_error, figures.values)
    coverage = figures.with_face / figures.samples if figures.samples else None
    reasons = []
    if identity["mean"] is not None and identity["mean"] < thresholds.min_id_similarity:
        reasons.append(
            f"identity similarity {identity['mean']:.3f} is under {thresholds.min_id_similarity:g}"
            " (the swapped faces do not look like the source)"
        )
    if psnr is not None and psnr < thresholds.min_psnr_db:
        reasons.append(
            f"PSNR outside the faces {psnr:.1f} dB is under {thresholds.min_psnr_db:g} dB"
            " (pixels beyond the faces changed)"
        )
    if figures.reverse and figures.with_face:
        reasons.append(
            f"a face is still detectable in {figures.with_face} of {figures.samples} sampled frames"
            " (the anonymiser missed it)"
        )
    return {
        "id_similarity": identity,
        "psnr_outside_db": _rounded(psnr, 2),
        "face_coverage": _rounded(coverage),
        "passed": not reasons,
        "reasons": reasons,
    }


# ---------------------------------------------------------------- the measures of one frame


def outside_faces(
    shape: tuple[int, ...], boxes: Iterable[np.ndarray], margin: float = FACE_MARGIN
) -> np.ndarray:
    """A boolean mask of the pixels farther than ``margin`` box sizes from every box."""
    import numpy as np

    height, width = shape[:2]
    outside = np.ones((height, width), dtype=bool)
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        top, bottom = max(0, int(y1 - margin * h)), max(0, int(y2 + margin * h) + 1)
        left, right = max(0, int(x1 - margin * w)), max(0, int(x2 + margin * w) + 1)
        outside[top:bottom, left:right] = False
    return outside


def squared_error_outside(
    before: np.ndarray, after: np.ndarray, boxes: Iterable[np.ndarray], margin: float = FACE_MARGIN
) -> tuple[float, int]:
    """(summed squared error, values compared) of the pixels outside the faces: the measure
    of "nothing else changed", shared by the gate and the face tests."""
    import numpy as np

    outside = outside_faces(before.shape, boxes, margin)
    difference = before[outside].astype(np.float64) - after[outside].astype(np.float64)
    return float(np.sum(difference * difference)), int(difference.size)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# ---------------------------------------------------------------- sampled frames of a segment


def sampled(index: int, every: int) -> bool:
    """Whether the frame at ``index`` (in the source's frame list) is one the gate measures."""
    return every > 0 and index % every == 0


def capture(frames: Iterator[Frame], every: int, into: dict[int, np.ndarray]) -> Iterator[Frame]:
    """``frames`` unchanged, with a copy of each sampled frame's input pixels kept in ``into``."""
    for frame in frames:
        if sampled(frame.index, every):
            into[frame.index] = frame.image.copy()
        yield frame


def decode_back(
    path: Path, first_index: int, wanted: Iterable[int], size: tuple[int, int] | None = None
) -> dict[int, np.ndarray]:
    """The frames at ``wanted`` (source indices) of the encoded segment at ``path``, whose
    first frame is ``first_index``, decoded as BGR; decoding stops after the last wanted.
    ``size`` (width, height): the input's, where an odd one was coded a pixel larger."""
    import av

    from pipeline.encode import visible

    positions = sorted(i - first_index for i in wanted)
    if not positions:
        return {}
    found: dict[int, np.ndarray] = {}
    wanted_set, last = set(positions), positions[-1]
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted_set:
                frame = visible(frame, *size) if size else frame
                found[first_index + position] = frame.to_ndarray(format="bgr24")
            if position >= last:
                break
    return found


class Measures(Protocol):
    reverse: bool

    def measure(self, before: np.ndarray, after: np.ndarray) -> Figures: ...


def measure_segment(
    gate: Measures, path: Path, first_index: int, inputs: Mapping[int, np.ndarray]
) -> Figures:
    """The figures of a segment's sampled frames: ``inputs`` (source index -> input pixels)
    against the same frames decoded back from the encoded segment at ``path``."""
    first = next(iter(inputs.values()), None)  # a segment's frames share one size
    size = (first.shape[1], first.shape[0]) if first is not None else None
    decoded = decode_back(path, first_index, inputs, size)
    figures = Figures(reverse=gate.reverse)
    for index in sorted(inputs):
        if index not in decoded:
            raise RuntimeError(f"frame {index} is missing from the encoded segment {path.name}")
        figures.add(gate.measure(inputs[index], decoded[index]))
    return figures
