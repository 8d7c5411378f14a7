"""The operator's settings of what a deployment shows (actviz/settings.py): the title, the
description and the model choices, read with the one policy every ACTVIZ_* setting follows."""

import pytest

from actviz.errors import SettingError
from actviz.settings import SETTINGS, model_choices, value


def test_title_and_description_are_texts_unset_by_default():
    assert value("ACTVIZ_TITLE", {}) is None and value("ACTVIZ_DESCRIPTION", {}) is None
    assert value("ACTVIZ_TITLE", {"ACTVIZ_TITLE": "  Pneumonia on chest X-rays  "}) == "Pneumonia on chest X-rays"
    words = "A **VGG16** trained on 5,856 chest X-rays (NORMAL, PNEUMONIA)."
    assert value("ACTVIZ_DESCRIPTION", {}, fallback={"ACTVIZ_DESCRIPTION": words}) == words  # a Streamlit secret
    assert value("ACTVIZ_TITLE", {"ACTVIZ_TITLE": "mine"}, fallback={"ACTVIZ_TITLE": "theirs"}) == "mine"  # the environment first


def test_model_choices_parse_in_the_order_given_each_once():
    assert value("ACTVIZ_MODEL_CHOICES", {}) is None
    assert value("ACTVIZ_MODEL_CHOICES", {"ACTVIZ_MODEL_CHOICES": "model"}) == ("model",)
    assert value("ACTVIZ_MODEL_CHOICES", {"ACTVIZ_MODEL_CHOICES": " Demo , model,demo "}) == ("demo", "model")
    assert value("ACTVIZ_MODEL_CHOICES", {"ACTVIZ_MODEL_CHOICES": "model,demo,upload"}) == ("model", "demo", "upload")


@pytest.mark.parametrize("bad", ["models", "model, zoo", ",", "model;demo"])
def test_a_bad_model_choice_names_the_variable_and_what_it_takes(bad):
    with pytest.raises(SettingError) as raised:
        value("ACTVIZ_MODEL_CHOICES", {"ACTVIZ_MODEL_CHOICES": bad})
    assert str(raised.value).startswith(f"ACTVIZ_MODEL_CHOICES is '{bad.strip()}'; it takes one or more of model, demo, upload, "
                                        "separated by commas (the models visitors may choose")
    assert SETTINGS["ACTVIZ_MODEL_CHOICES"].takes() == "one or more of model, demo, upload, separated by commas"


def test_model_choices_default_as_before_and_refuse_a_model_that_is_not_there():
    assert model_choices(None, configured=False) == ("demo", "upload")
    assert model_choices(None, configured=True) == ("model", "demo", "upload")
    assert model_choices(("upload", "demo"), configured=False) == ("upload", "demo")
    assert model_choices(("model",), configured=True) == ("model",)
    with pytest.raises(SettingError, match="ACTVIZ_MODEL_CHOICES offers 'model', but no model is configured: set ACTVIZ_MODEL"):
        model_choices(("model", "demo"), configured=False)
