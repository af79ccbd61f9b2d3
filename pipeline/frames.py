"""The unit that flows through the pipeline: one decoded frame with its place in the source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

import av

if TYPE_CHECKING:  # numpy is imported where pixels are touched: the empty chain never needs it
    import numpy as np


class Frame:
    """A frame of the source: its index in the source's frame list, its pts, and its pixels.

    Pixels stay in the decoder's frame until a processor asks for ``image`` (HxWx3 uint8,
    BGR like OpenCV and InsightFace), so the empty chain never pays for a colour conversion.
    When a processor changes some pixels, the encoder gets the decoder's own YUV samples
    everywhere else: a face swap does not cost the rest of the picture a colour round trip.
    """

    __slots__ = ("index", "pts", "_source", "_original", "_image")

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
        self._source = video_frame
        self._original: np.ndarray | None = None  # the source as BGR, once converted
        self._image = image

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            assert self._source is not None
            self._original = self._source.to_ndarray(format="bgr24")
            self._image = self._original.copy()
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        if value.shape != (self.height, self.width, 3):
            raise ValueError(
                f"a processor changed the frame size from {(self.height, self.width, 3)} to {value.shape}"
            )
        if self._image is None and self._source is not None:
            self._original = self._source.to_ndarray(format="bgr24")
        self._image = value

    @property
    def width(self) -> int:
        if self._source is not None:
            return int(self._source.width)
        assert self._image is not None
        return int(self._image.shape[1])

    @property
    def height(self) -> int:
        if self._source is not None:
            return int(self._source.height)
        assert self._image is not None
        return int(self._image.shape[0])

    def to_video_frame(self) -> av.VideoFrame:
        """The frame as PyAV wants it for encoding (the decoder's own frame when untouched)."""
        if self._source is not None and (self._image is None or self._original is None):
            return self._source  # never converted, so never changed
        picture = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        if self._source is None or self._original is None:
            return picture
        import numpy as np

        changed = np.any(self.image != self._original, axis=2)  # one comparison, reused below
        if not changed.any():
            return self._source
        return _keep_unchanged_samples(self._source, picture, changed)


def _keep_unchanged_samples(
    source: av.VideoFrame, picture: av.VideoFrame, changed: np.ndarray
) -> av.VideoFrame:
    """``picture`` in the source's 4:2:0 layout, taking the source's own samples wherever no
    pixel changed (a chroma sample counts as changed when any of its 2x2 pixels did)."""
    import numpy as np

    height, width = changed.shape
    if source.format.name != "yuv420p" or height % 2 or width % 2:
        return picture
    original = source.to_ndarray()  # the Y plane, then U and V, packed row after row
    converted = picture.reformat(format="yuv420p").to_ndarray()
    # each plane flat: a height that is not a multiple of 4 packs U and V across rows
    flat_original, flat_converted = original.reshape(-1), converted.reshape(-1)
    luma_n, chroma_n = height * width, (height // 2) * (width // 2)
    block = changed.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3)).reshape(-1)
    u, v = slice(luma_n, luma_n + chroma_n), slice(luma_n + chroma_n, luma_n + 2 * chroma_n)
    merged = np.concatenate(
        [
            np.where(changed.reshape(-1), flat_converted[:luma_n], flat_original[:luma_n]),
            np.where(block, flat_converted[u], flat_original[u]),
            np.where(block, flat_converted[v], flat_original[v]),
        ]
    ).reshape(original.shape)
    return av.VideoFrame.from_ndarray(merged, format="yuv420p")


def batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Group a frame stream into lists of at most ``size`` frames."""
    iterator = iter(frames)
    while batch := list(islice(iterator, size)):
        yield batch
