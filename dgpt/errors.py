"""The one exception type the command line turns into a one-line error and a non-zero exit."""


class DGPTError(Exception):
    """A failure the user can act on; its message says what is wrong and, where it helps, what to do."""
