"""Download a model file over http(s), with a size limit and a timeout."""

from __future__ import annotations

from .errors import ModelFileError
from .scan import MAX_MODEL_BYTES


def fetch_model(url: str, *, timeout: float = 60.0, limit: int = MAX_MODEL_BYTES) -> bytes:
    """Download a model file over http(s), refusing anything over ``limit`` bytes."""
    import urllib.error
    import urllib.request

    if not url.lower().startswith(("http://", "https://")):
        raise ModelFileError(f"'{url}' is not an http(s) address.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > limit:
                raise ModelFileError(f"The model at {url} is {declared / 1e9:.1f} GB, more than actviz opens.")
            data = response.read(limit + 1)
    except ModelFileError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelFileError(f"The model could not be downloaded from {url} ({exc}).") from None
    if len(data) > limit:
        raise ModelFileError(f"The model at {url} is larger than actviz opens ({limit / 1e9:.1f} GB).")
    return data

