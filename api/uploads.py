"""Streaming multipart/form-data: parts are read one after the other, straight from the
request body, in bounded memory (werkzeug's sans-IO decoder, pulled from ``request.stream``).
A file part is a readable stream handed on to the bucket; nothing is spooled whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble

READ_SIZE = 256 * 1024


class PartReader:
    """The body of one part, as a stream (``read``)."""

    def __init__(self, form: MultipartStream) -> None:
        self._form, self._buffer, self.done = form, b"", False

    def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or len(self._buffer) < size):
            data, more = self._form.next_data()
            self._buffer += data
            self.done = not more
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readable(self) -> bool:
        return True

    def read_limited(self, limit: int) -> bytes:
        """The whole (small) body; RequestEntityTooLarge past ``limit`` bytes."""
        data = self.read(limit + 1)
        if len(data) > limit:
            raise RequestEntityTooLarge(f"a form field is larger than {limit} bytes")
        return data

    def drain(self) -> None:
        while not self.done:
            self.read(READ_SIZE)


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    body: PartReader


class MultipartStream:
    def __init__(self, stream: IO[bytes], boundary: bytes, max_parts: int) -> None:
        self._stream = stream
        # the decoder bounds its own buffer; field sizes are checked by PartReader.read_limited
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=4 * READ_SIZE, max_parts=max_parts)
        self._eof = False

    def _event(self):  # type: ignore[no-untyped-def]
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from None
            if not isinstance(event, NeedData):
                return event
            if self._eof:
                raise BadRequest("the multipart body ends early")
            data = self._stream.read(READ_SIZE)
            if not data:
                self._eof = True
            self._decoder.receive_data(data or None)

    def next_data(self) -> tuple[bytes, bool]:
        event = self._event()
        if not isinstance(event, Data):
            raise BadRequest("malformed multipart body")
        return event.data, event.more_data

    def parts(self) -> Iterator[Part]:
        while True:
            event = self._event()
            if isinstance(event, Preamble):
                continue
            if isinstance(event, Epilogue):
                return
            if isinstance(event, File | Field):
                filename = event.filename if isinstance(event, File) else None
                body = PartReader(self)
                yield Part(event.name, filename, event.headers.get("content-type"), body)
                body.drain()  # whatever the consumer left unread
            else:
                raise BadRequest("malformed multipart body")


class TeeReader:
    """Reads from ``source`` and writes a copy of every byte to ``copy``."""

    def __init__(self, source: PartReader, copy: BinaryIO) -> None:
        self._source, self._copy = source, copy

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._copy.write(data)
        return data

    def readable(self) -> bool:
        return True
