"""The one exception type that means "the user gave us something we cannot use"."""


class InputError(ValueError):
    """Bad usage or bad input: the CLI prints the message as one line and exits 2.

    The message names the offending file, line, column or value.
    """
