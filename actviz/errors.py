"""The errors actviz raises for things a user can get wrong.

Every message is written for a person who has never programmed: it says what
was expected, what was found, and what to do. The app and the command line
catch ``ActvizError`` and show the message; anything else is a bug.
"""


class ActvizError(Exception):
    """Base class: a problem with the user's input, explained in plain words."""


class ModelFileError(ActvizError):
    """The model file is missing, broken, or not a Keras model."""


class UnsafeModelError(ModelFileError):
    """The model file contains code or entries that are not safe to load."""


class ImageError(ActvizError):
    """The image cannot be read, or is too large to read safely."""


class NothingToShowError(ActvizError):
    """The model has no layer whose output can be drawn as images."""


class LayerNotFoundError(ActvizError):
    """A layer the user asked for does not exist or cannot be drawn."""
