"""The page "Model" (views/model.py) through AppTest, against the model as plain Keras reads it."""

from visit import demo_keras_model, texts


def test_model_view_renders(app):
    at = app.run()
    at.switch_page("views/model.py").run()
    assert not at.exception and not at.error, "Model"


def test_model_view_lists_every_layer_with_its_parameters(app):
    model = demo_keras_model()
    at = app.run()
    at.switch_page("views/model.py").run()
    table = at.dataframe[0].value
    rows = dict(zip(table["layer"].str.strip(), table["parameters"]))
    layers = model.layers[1:]  # the table starts after the input
    assert list(rows) == [layer.name for layer in layers]
    assert all(rows[layer.name] == f"{layer.count_params():,}" for layer in layers)
    assert f"{model.count_params():,} parameters in all." in texts(at)


def test_model_view_says_what_each_layer_does_and_keeps_the_programmers_words_in_a_fold(app):
    at = app.run()
    at.switch_page("views/model.py").run()
    rows = {row["layer"].strip(): row for row in at.dataframe[0].value.to_dict("records")}
    assert rows["block1_conv1"]["what it does"] == "learned filters, each looking for one small pattern all over its input"
    assert rows["block1_pool"]["what it does"] == "shrinks the maps: keeps the strongest response in each small patch"
    outside = " ".join(c.value for c in at.main.caption if all(c not in e.caption for e in at.expander))
    folded = " ".join(c.value for e in at.expander for c in e.caption)
    assert "model.summary()" not in outside and "model.summary()" in folded
