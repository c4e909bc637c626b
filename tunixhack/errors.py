"""The few exceptions that cross module boundaries.

UserError is the one user-facing error: the command line prints its message as one line and exits 2.
The teacher errors tell the runner what a failed request means: retry it, or stop the run.
"""


class UserError(Exception):
    """Bad input or configuration: printed as one line, exit code 2, no traceback."""


class TransientError(Exception):
    """A request failed in a way a retry can fix: connection lost, timeout, 429, 5xx."""


class FatalTeacherError(UserError):
    """A request failed in a way no retry can fix: unknown model, bad request, auth. Stops the run."""


class Reject(Exception):
    """Raised by Recipe.parse: the reply is not usable; the row goes to the rejects file with this reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
