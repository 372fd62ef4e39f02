"""The one exception type that means "the user gave us something we cannot use"."""


class InputError(ValueError):
    """Bad usage or bad input: the CLI prints the message as one line and exits 2.

    The message names the offending file, line, column or value.
    """


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line for a message: its type and all of its text, lines
    joined, cut at ``limit`` characters (the full error stays chained as the cause).

    >>> one_line(ConnectionError("cannot reach hub\\n  (timeout after 10 s)"))
    'ConnectionError: cannot reach hub (timeout after 10 s)'
    """
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"
