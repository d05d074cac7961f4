# Copyright (c) mmbinpc contributors. All rights reserved.
"""The error raised for bad experiment input."""


class ExperimentError(ValueError):
    """Bad experiment input: a definition, a scale, a pattern or a file.

    The message names the file (or option), the problem and the fix.
    """
