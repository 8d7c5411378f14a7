"""Download a model file over http(s), with a size limit and a time limit on the whole download."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from ..errors import ModelFileError
from .scan import MAX_MODEL_BYTES


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) addresses only (urllib would also follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 -- urllib's signature
        if not newurl.lower().startswith(("http://", "https://")):
            raise ModelFileError(f"The model's address redirects to '{newurl}', which is not an http(s) address.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_model(url: str, *, timeout: float = 60.0, limit: int = MAX_MODEL_BYTES) -> bytes:
    """Download a model file over http(s), refusing anything over ``limit`` bytes or ``timeout`` seconds.

    ``timeout`` bounds the whole download, not only each network read, so a
    server that sends a byte now and then cannot hold the caller for ever.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise ModelFileError(f"'{url}' is not an http(s) address.")
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(_HttpRedirectsOnly)
    try:
        with opener.open(url, timeout=timeout) as response:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > limit:
                raise ModelFileError(f"The model at {url} is {declared / 1e9:.1f} GB, more than actviz opens.")
            data = _read_until(response, deadline, limit, url, timeout)
    except ModelFileError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelFileError(f"The model could not be downloaded from {url} ({exc}).") from None
    if len(data) > limit:
        raise ModelFileError(f"The model at {url} is larger than actviz opens ({limit / 1e9:.1f} GB).")
    return data


def _read_until(response, deadline: float, limit: int, url: str, timeout: float) -> bytes:  # noqa: ANN001
    """The body, read in pieces as they arrive (``read1``), with the deadline checked between pieces."""
    parts, size = [], 0
    while size <= limit:
        if time.monotonic() > deadline:
            raise ModelFileError(f"Downloading the model from {url} took longer than {timeout:g} seconds; stopped.")
        part = response.read1(1024**2)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
