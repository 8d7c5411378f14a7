"""A fresh visitor of the dashboard for each AppTest test, with no operator settings."""

import pytest
from streamlit.testing.v1 import AppTest

from visit import APP


@pytest.fixture()
def app(monkeypatch):
    monkeypatch.delenv("ACTVIZ_MODEL", raising=False)
    monkeypatch.delenv("ACTVIZ_SAMPLES", raising=False)
    monkeypatch.delenv("ACTVIZ_CLASSES", raising=False)
    return AppTest.from_file(APP, default_timeout=180)
