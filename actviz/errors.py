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


class ChoiceError(ActvizError):
    """An option that does not exist for this model: a class, a channel, a method, a setting."""


class ClassNotFoundError(ChoiceError):
    """A class number outside the model's classes."""


class ChannelNotFoundError(ChoiceError):
    """A channel number outside a layer's channels."""


class BudgetError(ActvizError):
    """The work asked for would take more memory or time than allowed; refused before it starts."""


class Cancelled(ActvizError):
    """A long computation was stopped by the person who started it (or by a newer choice)."""


class ModelCheckError(UnsafeModelError):
    """Checking an untrusted model file in a separate process broke a limit: it crashed that
    process, ran past the time allowed, or needed more memory than allowed. The file is refused."""


class ServerBusyError(BudgetError):
    """Every slot for checking model files is taken by other work; try again shortly."""


class SettingError(ActvizError):
    """An ``ACTVIZ_*`` setting has a value it does not take; the message names the variable and what it takes."""


class KerasVersionError(ActvizError):
    """The installed Keras lacks a private name actviz relies on: another version than the one tested."""
