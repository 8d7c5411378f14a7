"""Names from files made safe: CSV cells, terminals, Markdown, file names."""

import pytest

from actviz.text import csv_cell, file_name, markdown_text, shorten, terminal_text, unique_names


@pytest.mark.parametrize("value,expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("block1_conv1", "block1_conv1"), ("-0.5", "-0.5"), ("+3", "+3"), (-2, "-2"), (0.25, "0.25"),
])
def test_csv_cell_neutralises_formulas_not_numbers(value, expected):
    assert csv_cell(value) == expected


def test_terminal_text_removes_escape_sequences_and_controls():
    assert terminal_text("\x1b[31mred\x1b[0m") == "red"
    assert terminal_text("a\x1b]0;title\x07b") == "ab"  # OSC: set the window title
    assert terminal_text("x\x08\x07y\rz") == "x\ufffd\ufffdy\ufffdz"
    assert terminal_text("tab\tstays") == "tab\tstays"


def test_markdown_text_shows_names_literally():
    hostile = "[Session expired - sign in](https://evil.example/login)"
    text = markdown_text(hostile)
    assert "](" not in text and "\\[" in text and "\\(" in text
    assert markdown_text("https://evil.example") == "https\\://evil\\.example"  # no bare autolink
    assert markdown_text("<img src=x onerror=alert(1)>").startswith("\\<img")
    assert markdown_text("**bold** _it_ `code` $x$ :red[x]") == "\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\$x\\$ \\:red\\[x\\]"


def test_file_name_safe_capped_and_distinct():
    assert file_name("vgg16/block1_conv1") == "vgg16__block1_conv1"
    assert file_name("../../etc/passwd") == "etc__passwd"
    assert file_name("") == "unnamed"
    long_a, long_b = file_name("a" * 5000 + "1"), file_name("a" * 5000 + "2")
    assert len(long_a) <= 120 and len(long_b) <= 120 and long_a != long_b


def test_unique_names_ignore_case():
    assert unique_names(["a.png", "A.png", "a.png", "b"]) == ["a.png", "A_2.png", "a_3.png", "b"]
    assert shorten("x" * 100, 10) == "x" * 9 + "\u2026"
