"""Names from model files made safe for where they are shown: a spreadsheet cell, a terminal,
Markdown, a file name. A layer or file name is text a stranger chose."""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: Longest file name actviz writes (most file systems allow 255 bytes).
MAX_FILE_NAME = 120

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")


def csv_cell(value: object) -> str:
    """A value for a CSV cell that a spreadsheet shows as text, never runs as a formula.

    Text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a line break gets a
    leading ``'`` (OWASP's advice against CSV injection); control characters are
    replaced; numbers are left alone.

    >>> csv_cell("=HYPERLINK(1)"), csv_cell("-0.5"), csv_cell("block1_conv1")
    ("'=HYPERLINK(1)", '-0.5', 'block1_conv1')
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = terminal_text(value)  # no escape sequences for whoever views the file in a terminal
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def terminal_text(value: object) -> str:
    """Text with escape sequences and control characters removed, safe to print to a terminal."""
    text = _ANSI.sub("", str(value))
    return "".join(ch if ch in "\t" or unicodedata.category(ch)[0] != "C" else "\ufffd" for ch in text)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (for tables; the full name stays in files)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def markdown_text(value: object) -> str:
    """Text shown literally inside Streamlit Markdown: no links, no formatting, no HTML."""
    text = terminal_text(value).replace("\n", " ")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def file_name(text: str, *, limit: int = MAX_FILE_NAME) -> str:
    """A layer or image name made safe as one file name: nesting slashes become ``__``,
    anything but letters, digits, ``_ . -`` becomes ``_``; names over ``limit``
    characters are cut and end in a short hash, so two long names stay apart."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text).replace("/", "__")).strip("._") or "unnamed"
    if len(name) > limit:
        digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:10]
        name = name[: limit - 11].rstrip("._") + "_" + digest
    return name


def unique_names(names: list[str]) -> list[str]:
    """The same names, with ``_2``, ``_3`` ... added where one repeats (case-insensitively,
    since some file systems ignore case)."""
    seen: set[str] = set()
    result = []
    for name in names:
        stem, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
        candidate, count = name, 2
        while candidate.lower() in seen:
            candidate = f"{stem}_{count}{dot}{ext}" if dot else f"{name}_{count}"
            count += 1
        seen.add(candidate.lower())
        result.append(candidate)
    return result


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
