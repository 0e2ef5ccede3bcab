"""Docora's one exception hierarchy.

Every error raised on purpose is a DocoraError whose message is safe to show to a
client (no secret, no remote's raw output). Its class says what kind of failure it is;
the API maps classes to HTTP statuses in one place (api/errors.py) and the CLI prints
the message and exits 2.
"""

from __future__ import annotations


class DocoraError(Exception):
    """Base of every deliberate error; str(error) is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExpectedFailure(Exception):
    """A failure outside Docora's control that it handles by design (a receiver that does
    not acknowledge, a lease run out, a stored secret that no longer decrypts), as opposed
    to a bug. Its message is safe to log; logs show it as one line without a traceback.
    DocoraErrors count as expected too."""


class ConfigError(DocoraError):
    """A missing or malformed setting; the message is one line naming the variable."""


class MalformedInput(DocoraError):
    """A request that does not have the expected shape (a field out of range, a cursor
    that is not one). HTTP 400."""


class InvalidInput(DocoraError):
    """A well-formed value refused on meaning (a URL with credentials, a token of the wrong
    shape, a webhook target that is not public). HTTP 422."""


class Forbidden(DocoraError):
    """Authenticated, but this request may not act (a missing or wrong CSRF token). HTTP 403."""


class NotFound(DocoraError):
    """No such resource, or one the caller may not see. HTTP 404."""


class Conflict(DocoraError):
    """The request contradicts the current state. HTTP 409."""


class Unavailable(DocoraError):
    """A dependency (Postgres) cannot be reached; retry later. HTTP 503."""
