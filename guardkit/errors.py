"""The base of every error guardkit raises for a problem the user can fix; the CLI prints these without a traceback."""


class GuardkitError(Exception):
    """A problem with the user's input, files or environment; the message says what to do."""
