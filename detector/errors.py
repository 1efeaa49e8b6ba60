"""User-facing errors: each carries a one-line message that the CLI prints without a traceback."""


class DetectorError(Exception):
    """Base class for problems caused by the input or the environment rather than a bug."""


class InputError(DetectorError):
    """The input file is missing, unreadable, not a video, corrupt, or otherwise unusable."""


class ModelError(DetectorError):
    """The model file is missing or is not one exported by this project."""
