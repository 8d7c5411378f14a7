"""What the AppTest files of the dashboard share: where the app is, reading its page as a person
does, and test images.

AppTest runs the entry (app.py) and the page it is on. ``at.switch_page("views/why.py")`` opens a
page; AppTest then asks for that page on every later run, so after the app moves to another page
by itself (a link: st.switch_page) a test that goes on there switches to it too.
"""

import io
import re
from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def texts(at):
    """The page's Markdown as a reader sees it."""
    return read(" ".join(m.value for m in [*at.markdown, *at.caption, *at.header, *at.subheader, *at.title]))


def read(markdown):
    """Markdown as a reader sees it: the app escapes punctuation in names with a backslash."""
    return re.sub(r"\\([^A-Za-z0-9\s])", r"\1", markdown)


def png_bytes(shape):
    """A PNG file of random pixels: uint8 of ``shape`` (H, W) or (H, W, C)."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def demo_keras_model():
    """The bundled demo model, loaded by plain Keras."""
    import keras

    from actviz import demo

    return keras.saving.load_model(demo.MODEL, compile=False)


def keras_maps(layer, *, sample=0):
    """float32 (H, W, C): what plain Keras computes at ``layer`` of the demo model for the demo's
    sample image number ``sample`` (56 x 56 grey pixels, divided by 255 as the demo model takes them)."""
    import keras
    import numpy as np
    from PIL import Image

    from actviz import demo

    model = demo_keras_model()
    pixels = np.asarray(Image.open(demo.samples()[sample]).convert("L"), np.float32)[None, :, :, None] / 255
    return np.asarray(keras.Model(model.inputs, model.get_layer(layer).output)([pixels]))[0]
