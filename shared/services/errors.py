"""The fake services' two kinds of failure."""


class TransientServiceError(Exception):
    """A failure that may succeed on retry (injected by ``FAKE_TRANSIENT_FAILURES``)."""


class ServiceValidationError(Exception):
    """The request is invalid or was refused (bad flight number, declined card); retrying cannot help."""
