"""The one exception type users see.

Anything raised as `MiaError` is printed by the `mia` entry point as a single line
(`mia: error: ...`) without a traceback; its message must name the file, field or
config key at fault and, where possible, say what to do.
"""


class MiaError(Exception):
    """A problem with the user's input, config or environment (not a bug in mia)."""
