"""The content policy's classifier: an image classifier that scores a frame as unsafe.

The default model is Yahoo's Open NSFW (a ResNet-50, BSD-2) as exported to ONNX from its
TensorFlow port: input ``[N, 224, 224, 3]`` float32, a BGR image resized to 224x224 with the
Caffe means (104, 117, 123) subtracted, channels last; output ``[N, 2]`` softmax
probabilities ``[safe, unsafe]``. FaceFusion's content analyser and OpenChaver feed it the
same way. A frame scores its ``unsafe`` probability; the policy compares it with its
threshold (0.8 by default, FaceFusion's limit).

``screen`` classifies the sampled frames of a stream on their way to the processors: in
``block`` mode the first frame at or over the threshold raises ``ContentBlocked``; in
``flag`` mode the scores are kept in a ``Screening`` that adds up like the quality gate's
figures (segments into a chunk, chunks into a task).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import PipelineError
from pipeline.frames import Frame
from pipeline.quality import sampled

if TYPE_CHECKING:
    import numpy as np

    from pipeline.runtime import Runtime

PolicyMode = Literal["off", "flag", "block"]
CLASSIFIER_KINDS = ("nsfw",)
SIDE = 224
BGR_MEANS = (104.0, 117.0, 123.0)
UNSAFE = 1  # the output's column of the unsafe class
SCORE_DIGITS = 6


class ContentBlocked(PipelineError):
    """A sampled frame scored at or over the block threshold: the task must not go on."""

    def __init__(self, index: int, score: float, threshold: float, model: str) -> None:
        super().__init__(
            f"content_policy: frame {index} scored {score:.3f} as unsafe, at or over the "
            f"threshold {threshold:g} (model {model}); the task is blocked and its files removed"
        )
        self.index, self.score = index, score


@dataclass(frozen=True)
class Policy:
    """What a process does with each sampled frame: nothing, flag it, or block its task."""

    mode: PolicyMode = "off"
    model: str = "open_nsfw"
    threshold: float = 0.8

    @property
    def on(self) -> bool:
        return self.mode != "off"


@dataclass
class Screening:
    """The classifier's scores over the sampled frames of a segment, chunk or task."""

    samples: int = 0
    score: float = 0.0  # the highest

    def add(self, other: Screening) -> Screening:
        self.samples += other.samples
        self.score = max(self.score, other.score)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "score": round(float(self.score), SCORE_DIGITS)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Screening:
        return cls(samples=int(data.get("samples", 0)), score=float(data.get("score", 0.0)))

    def report(self, threshold: float) -> dict[str, Any]:
        """The task's ``content_policy``: whether any sample reached ``threshold``."""
        return {"flagged": self.score >= threshold, "score": round(self.score, 4), "samples": self.samples}


class ContentClassifier:
    """One small class per model: the session is handed in, its input read from it."""

    def __init__(self, name: str, session: Any) -> None:
        self.name, self.session = name, session
        self.input_name = session.get_inputs()[0].name

    def score(self, image: np.ndarray) -> float:
        """The unsafe probability of a BGR frame."""
        import cv2
        import numpy as np

        resized = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        resized -= np.asarray(BGR_MEANS, dtype=np.float32)
        output = self.session.run(None, {self.input_name: resized[None]})[0]
        return float(np.asarray(output).reshape(-1)[UNSAFE])


def load_classifier(name: str, runtime: Runtime) -> ContentClassifier:
    """The verified model ``name`` (a ModelError when missing, mismatched or of another kind)."""
    from pipeline.models import load_model

    loaded = load_model(runtime, name, CLASSIFIER_KINDS)
    return ContentClassifier(loaded.spec.name, loaded.session)


def screened(index: int, every: int, first: int) -> bool:
    """Whether the frame at ``index`` is classified: the quality gate's samples, and the
    chunk's ``first`` frame (so a task shorter than the cadence is checked too)."""
    return index == first or sampled(index, every)


def screen(
    frames: Iterator[Frame],
    classifier: ContentClassifier,
    policy: Policy,
    every: int,
    first: int,
    into: Screening,
) -> Iterator[Frame]:
    """``frames`` unchanged, the sampled ones scored into ``into``; in ``block`` mode a frame
    at or over the threshold raises ContentBlocked before it is handed on."""
    for frame in frames:
        if screened(frame.index, every, first):
            score = classifier.score(frame.image)
            into.add(Screening(samples=1, score=score))
            if policy.mode == "block" and score >= policy.threshold:
                raise ContentBlocked(frame.index, score, policy.threshold, classifier.name)
        yield frame
