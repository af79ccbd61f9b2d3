"""Errors raised by the pipeline. Library errors are translated into these where they enter."""


class PipelineError(Exception):
    """Base class: a problem with the input or the configuration, stated for a user."""


class InvalidMediaError(PipelineError):
    """The input is not a usable video (not media, truncated, no video stream, no frames)."""


class InvalidRangeError(PipelineError):
    """A requested frame range or chunk/segment size is impossible for this input."""


class ModelError(PipelineError):
    """A model is missing, has the wrong hash, or the wrong signature."""


class ProviderError(PipelineError):
    """An execution provider that was asked for is not active."""


class DeviceError(ModelError):
    """A verified model that this host's runtime or accelerator cannot load or run (a CUDA
    or onnxruntime failure): a fault of the host, not of the input or the model file."""
