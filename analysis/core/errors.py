"""The base class of every error that names a problem the user can fix.

Command-line entry points catch :class:`UserError` and print its message with exit code 2
(see :mod:`analysis.core.cli`); anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad config, input file, model folder or option; the message says which and why."""
