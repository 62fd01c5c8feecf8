"""The root of humanbench's exceptions: the CLI turns any of them into a message and exit status 2."""


class HumanbenchError(Exception):
    """Bad input or state that the user can fix; the message says what, where and what was expected."""
