"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class PosterliteError(Exception):
    """A user-facing failure: bad input, missing file, failed gate. Message is one line."""
