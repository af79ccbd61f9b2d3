"""Errors of the job core, each meaning one thing to a caller (and one HTTP status to the API)."""


class JobError(Exception):
    """Base class."""


class TaskNotFound(JobError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r}")
        self.task_id = task_id


class BatchNotFound(TaskNotFound):
    """An unknown batch, or another tenant's (the same answer)."""

    def __init__(self, batch_id: str) -> None:
        JobError.__init__(self, f"no batch {batch_id!r}")
        self.task_id = batch_id


class InvalidTransition(JobError):
    """The task is not in a state that allows this (cancel a finished task, retry a running one)."""


class TryLater(JobError):
    """A service the step needs is unavailable (``service``, by role); the step is to be
    tried again later, and nothing was spent or recorded as failed."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} is unavailable")
        self.service = service


class LeaseLost(JobError):
    """The holder's lease on a piece of work is lost (expired, taken, or not renewed for too
    long): it stops and writes nothing more. Another holder goes on; no attempt is spent."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the lease on {what} is lost")


class InvalidSubmission(JobError):
    """A submission that is malformed: an input missing (``field`` names it), one too many,
    or options that are not a JSON object."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MediaRefused(JobError):
    """An input that is not usable media, is past a media limit, or whose range is
    impossible; the message names the input as its user knows it."""


class QuotaRefused(JobError):
    """The tenant's limits leave no room for this task (``kind``: ``too-many-queued`` or
    ``quota-exceeded``); ``extra`` holds the figures a client needs (the limit, what is left)."""

    def __init__(self, message: str, kind: str, **extra: int) -> None:
        super().__init__(message)
        self.kind, self.extra = kind, extra


class ModelsMissing(JobError):
    """No worker that takes chunks now has every model the task needs (``models``: the ones
    missing); the fix is on the workers, not in the submission."""

    def __init__(self, message: str, models: list[str]) -> None:
        super().__init__(message)
        self.models = models
