# Copyright (c) mmbinpc contributors. All rights reserved.
"""The project's error types: one per kind of file it reads.

Every loader raises one of these when a file is wrong, with a message that
names the file, the part that is wrong and what to do about it. Callers (the
tools) can catch :class:`MMBinPCFileError` to turn any bad input into a
non-zero exit with that message.
"""
from typing import Optional


class MMBinPCFileError(ValueError):
    """A file given to mmbinpc cannot be used as it is.

    Args:
        path (str): The file (or directory) at fault.
        problem (str): What is wrong with it.
        fix (str, optional): What the user can do.
    """

    kind = 'file'

    def __init__(self, path: str, problem: str, fix: Optional[str] = None):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f'{self.kind} {self.path}: {problem}'
        if fix:
            message += f'. {fix}'
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.fix)


class PackedFormatError(MMBinPCFileError):
    """A packed 1-bit model file is malformed, truncated or inconsistent."""

    kind = 'packed model file'


class DatasetFormatError(MMBinPCFileError):
    """A data-set file (shape list, point file, cache) cannot be read."""

    kind = 'data-set file'


class CheckpointMismatchError(MMBinPCFileError):
    """A checkpoint does not fit the model it is loaded into, or is broken."""

    kind = 'checkpoint'


__all__ = [
    'MMBinPCFileError', 'PackedFormatError', 'DatasetFormatError',
    'CheckpointMismatchError'
]
