"""Typed errors. Anything deriving from `IdvidError` is a *user* mistake or an unusable input: the CLI
prints its message as one line and exits with code 2. Everything else is a bug and keeps its traceback."""


class IdvidError(Exception):
    """Base class for errors caused by the user's input or environment (one-line message, exit code 2)."""


class InputError(IdvidError):
    """A path, file or argument that cannot be used as given."""


class ImageError(InputError):
    """An image that cannot be read or is not usable (unknown format, truncated, absurd size)."""


class VideoError(InputError):
    """A video that cannot be read or is not usable (empty, truncated, too few frames)."""


class NoFaceFound(InputError):
    """No face was detected where one is required."""


class MultipleFacesFound(InputError):
    """Several faces were found where the policy demands exactly one."""


class ModelUnavailable(IdvidError):
    """Weights for an optional model were not given or not found (never downloaded at run time)."""
