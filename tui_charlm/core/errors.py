"""The one exception type a user is meant to see."""


class CharlmError(Exception):
    """A problem the user caused and can fix, described in one sentence.

    The CLI prints the message and exits non-zero; the TUI shows it in the
    app. Anything else that escapes is a bug and keeps its traceback.
    """
