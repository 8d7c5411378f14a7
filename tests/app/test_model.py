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
