"""The unit that flows through the pipeline: one decoded frame with its place in the source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import av
import numpy as np


class Frame:
    """A frame of the source: its index in the source's frame list, its pts, and its pixels.

    Pixels stay in the decoder's frame until a processor asks for ``image`` (HxWx3 uint8,
    BGR like OpenCV and InsightFace), so the empty chain never pays for a colour conversion.
    """

    __slots__ = ("index", "pts", "_video_frame", "_image")

    def __init__(
        self,
        index: int,
        pts: int,
        video_frame: av.VideoFrame | None = None,
        image: np.ndarray | None = None,
    ) -> None:
        if video_frame is None and image is None:
            raise ValueError("a Frame needs a decoded frame or an image")
        self.index = index
        self.pts = pts
        self._video_frame = video_frame
        self._image = image

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            assert self._video_frame is not None
            self._image = self._video_frame.to_ndarray(format="bgr24")
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        if self._image is not None and value.shape != self._image.shape:
            raise ValueError(f"a processor changed the frame size from {self._image.shape} to {value.shape}")
        self._image = value
        self._video_frame = None

    @property
    def width(self) -> int:
        if self._image is not None:
            return int(self._image.shape[1])
        assert self._video_frame is not None
        return int(self._video_frame.width)

    @property
    def height(self) -> int:
        if self._image is not None:
            return int(self._image.shape[0])
        assert self._video_frame is not None
        return int(self._video_frame.height)

    def to_video_frame(self) -> av.VideoFrame:
        """The frame as PyAV wants it for encoding (the decoder's own frame when untouched)."""
        if self._video_frame is not None:
            return self._video_frame
        return av.VideoFrame.from_ndarray(self.image, format="bgr24")


def batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Group a frame stream into lists of at most ``size`` frames."""
    iterator = iter(frames)
    while batch := list(islice(iterator, size)):
        yield batch
