"""The page "Compare two images" (views/compare.py) through AppTest."""

from visit import texts


def test_compare_view_shows_both_answers_and_the_channels_most_apart(app):
    at = app.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception and not at.error
    assert "Channels that respond most differently" in texts(at)
    assert sum("The model says: **digit" in m.value for m in at.markdown) == 3  # the header, then both images
