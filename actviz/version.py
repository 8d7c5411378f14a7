"""actviz's version (one place: the package, the wheel's metadata and messages read it here)."""

__version__ = "0.3.0"
