"""Exceptions x2face raises for problems with what a user gave it.

Every ``X2FaceError`` carries a message written for the user; the CLI prints it as one line and the
app shows it as a ``gr.Error``. Anything else escaping x2face is a bug.
"""


class X2FaceError(Exception):
    """Base class: bad input, files or settings, explained in the message."""


class ConfigError(X2FaceError, ValueError):
    """A configuration (or ``config.json``) x2face cannot build from."""


class WeightsError(X2FaceError, RuntimeError):
    """Weights that cannot be found, read or matched to the architecture."""


class InputError(X2FaceError, ValueError):
    """A tensor or array without the documented shape, dtype or range."""


class MediaError(X2FaceError, ValueError):
    """A photo, video or audio file that cannot be read or is over a limit."""


class NoFaceError(MediaError):
    """No human face was found where one is needed."""


class FaceIndexError(NoFaceError):
    """Faces were found, but fewer than the face index asked for."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """``"TypeName: first line of the message"`` (cut to ``limit`` characters): how logs and result files
    record an exception that was caught and worked around."""
    text = str(exc)
    msg = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return msg if limit is None else msg[:limit]
