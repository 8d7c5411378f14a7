"""The page "What filters look for" (views/filters.py) through AppTest."""

from visit import read


def test_filters_view_makes_pictures_and_says_a_dead_filter_in_words(app):
    at = app.run()
    at.switch_page("views/filters.py").run()
    images_before = len(at.image)
    at.slider(key="pattern_steps_robust").set_value(16).run()
    at.button(key="pattern_go").click().run()
    assert not at.exception and not at.error
    # channels 0-3 of block2_conv2: three pictures, and channel 3 never fires on anything (a dead filter): said in words
    assert at.selectbox(key="pattern_layer").value == "block2_conv2"
    assert len(at.image) == images_before + 3 and sum("reaches" in " ".join(i.captions) for i in at.image) == 3
    assert any("channel 3 of block2_conv2: no pattern" in read(i.value) and "dead" in i.value for i in at.info)
    assert any("shifted" in c.value or "Read it as a texture" in c.value for c in at.caption)  # how they were made, how to read them
    assert "stop_patterns" not in [b.key for b in at.button]  # the job is done: no Stop button beside the pictures
    assert "pattern_go" not in [b.key for b in at.button]     # nor a button to make them again
