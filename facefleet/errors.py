"""Errors of the job core, each meaning one thing to a caller (and one HTTP status to the API)."""


class JobError(Exception):
    """Base class."""


class TaskNotFound(JobError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r}")
        self.task_id = task_id


class InvalidTransition(JobError):
    """The task is not in a state that allows this (cancel a finished task, retry a running one)."""
