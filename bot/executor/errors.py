"""The executor's own exceptions, beside the engine's family so every front maps them the same way.

    DreamError (core.errors)
    └── ExecutorError           the executor could not deliver a result; str(error) is a sentence for the user
        ├── WorkerCrashed       the worker process died (killed, segfault, out of memory) while running the job
        ├── WorkerStartFailed   no worker could start: the runner failed to load or warm its models
        ├── ExecutorClosed      the executor is shutting down, or was shut down, before the job finished
        └── JobFailed           the runner raised something outside the DreamError family (a bug);
                                `remote_type` and `remote_traceback` say what and where, for the log

Errors the runner raises on purpose (InvalidParameter, JobCancelled, ...) are not wrapped: they reach
the caller with their own class and message.
"""

from __future__ import annotations

from core.errors import DreamError

__all__ = ["ExecutorError", "WorkerCrashed", "WorkerStartFailed", "ExecutorClosed", "JobFailed"]


class ExecutorError(DreamError):
    """Base of the executor's errors."""


class WorkerCrashed(ExecutorError):
    pass


class WorkerStartFailed(ExecutorError):
    pass


class ExecutorClosed(ExecutorError):
    pass


class JobFailed(ExecutorError):
    """An unexpected exception in the worker. The message is safe to show; the details are for the log."""

    def __init__(self, message: str, *, remote_type: str = "", remote_traceback: str = ""):
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
