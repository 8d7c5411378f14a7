import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from actviz.errors import ChoiceError, ImageError
from actviz.inputs.images import fit_image, open_image, target_size
from actviz.inputs.preprocessing import preprocess


def _encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width=40, height=30):
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    return np.stack([x, x[::-1, ::-1], np.full_like(x, 90)], axis=-1)


@pytest.mark.parametrize("fmt,mode", [
    ("JPEG", "RGB"), ("JPEG", "CMYK"), ("PNG", "RGB"), ("PNG", "L"), ("BMP", "RGB"),
    ("TIFF", "RGB"), ("WEBP", "RGB"), ("GIF", "P"),
])
def test_open_image_reads_formats(fmt, mode):
    image = Image.fromarray(_gradient()).convert(mode)
    opened = open_image(_encode(image, fmt))
    assert opened.mode in ("RGB", "L") and opened.size == (40, 30)


def test_exif_rotated_jpeg_is_upright():
    image = Image.fromarray(_gradient(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    opened = open_image(_encode(image, "JPEG", exif=exif))
    assert opened.size == (30, 40)


def test_transparency_is_flattened_onto_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    opened = open_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert opened.mode == "RGB" and np.all(np.asarray(opened) == 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert np.all(np.asarray(open_image(_encode(palette, "PNG", transparency=0))) == 255)


def test_sixteen_bit_greyscale_is_scaled():
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    opened = open_image(_encode(Image.fromarray(values), "PNG"))
    assert opened.mode == "L"
    np.testing.assert_array_equal(np.asarray(opened), [[0, 255], [127, 3]])


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (8, 8), v) for v in (10, 200)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(open_image(data).convert("L"))[0, 0] == 10


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"just some text", "not an image"),
])
def test_non_images_refused(data, message):
    with pytest.raises(ImageError, match=message):
        open_image(data)


def test_truncated_image_refused():
    data = _encode(Image.fromarray(_gradient(200, 200)), "PNG")
    with pytest.raises(ImageError, match="damaged or incomplete"):
        open_image(data[: len(data) // 2])


def _png_header_only(width, height):
    """A tiny PNG that claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding():
    data = _png_header_only(30000, 30000)
    assert len(data) < 200
    with pytest.raises(ImageError, match="too large"):
        open_image(data)


def test_absurd_aspect_ratio_refused():
    with pytest.raises(ImageError, match="strip"):
        open_image(_encode(Image.new("L", (5000, 10)), "PNG"))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no image file"):
        open_image(tmp_path / "nope.png")


def test_fit_image_converts_colour_and_resizes():
    image = Image.fromarray(_gradient(40, 30))
    grey = fit_image(image, (20, 10, 1))
    assert grey.shape == (20, 10, 1) and grey.dtype == np.uint8
    colour = fit_image(image.convert("L"), (15, 15, 3))
    assert colour.shape == (15, 15, 3)
    np.testing.assert_array_equal(colour[..., 0], colour[..., 1])


def test_fit_image_dynamic_size_caps_longest_side():
    image = Image.new("RGB", (2000, 1000))
    assert fit_image(image, (None, None, 3), max_side=512).shape == (256, 512, 3)
    assert fit_image(Image.new("RGB", (100, 50)), (None, None, 3)).shape == (50, 100, 3)
    assert target_size((100, 50), (25, None)) == (25, 50)


def test_fit_image_refuses_other_channel_counts():
    with pytest.raises(ImageError, match="4 colour channels"):
        fit_image(Image.new("RGB", (4, 4)), (4, 4, 4))


def test_preprocess_presets_exact_values():
    pixels = np.array([[[0, 127.5, 255]]], dtype=np.float32).astype(np.uint8)  # 0, 127, 255
    before = pixels.copy()
    np.testing.assert_allclose(preprocess(pixels, "rescale")[0, 0, 0], [0, 127 / 255, 1])
    np.testing.assert_allclose(preprocess(pixels, "none")[0, 0, 0], [0, 127, 255])
    np.testing.assert_allclose(preprocess(pixels, "tf")[0, 0, 0], [-1, 127 / 127.5 - 1, 1], rtol=1e-6)
    # caffe: BGR order, then ImageNet means (B 103.939, G 116.779, R 123.68) subtracted
    np.testing.assert_allclose(preprocess(pixels, "caffe")[0, 0, 0], [255 - 103.939, 127 - 116.779, 0 - 123.68], rtol=1e-5)
    np.testing.assert_allclose(
        preprocess(pixels, "torch")[0, 0, 0],
        [(0 - 0.485) / 0.229, (127 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-5,
    )
    assert preprocess(pixels, "rescale").shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(pixels, before)  # never modified in place
    with pytest.raises(ChoiceError, match="Unknown preprocessing"):
        preprocess(pixels, "magic")


def test_value_range_of_each_preprocessing():
    from actviz.inputs.preprocessing import value_range

    assert value_range("rescale", 3) == (0.0, 1.0)
    assert value_range("none", 1) == (0.0, 255.0)
    assert value_range("tf", 3) == (-1.0, 1.0)
    low, high = value_range("caffe", 3)
    assert low == pytest.approx(-123.68, abs=1e-3) and high == pytest.approx(255 - 103.939, abs=1e-3)


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "ICO", "TGA", "PCX", "SGI", "IM", "DDS", "QOI", "PDF"])
def test_only_the_named_formats_are_decoded(fmt):
    """Pillow knows these, but only JPEG, PNG, GIF, WebP, BMP and TIFF are decoded (EPS would go to Ghostscript)."""
    data = _encode(Image.fromarray(_gradient(8, 8)), fmt)
    with pytest.raises(ImageError, match="not an image actviz can read. Use a JPEG, PNG, GIF, WebP, BMP or TIFF file"):
        open_image(data)


def test_phone_multi_picture_jpeg_is_read_as_jpeg():
    first = Image.fromarray(_gradient(40, 30))
    opened = open_image(_encode(first, "MPO", save_all=True, append_images=[first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]))
    assert opened.size == (40, 30) and opened.mode == "RGB"


@pytest.mark.parametrize("size,expected", [
    ((1, 1), (32, 32)), ((50, 1), (32, 512)), ((1, 50), (512, 32)), ((7, 7), (32, 32)), ((20, 10), (32, 64)),
    ((40, 30), (32, 43)), ((100, 50), (50, 100)), ((2000, 1000), (256, 512)),
])
def test_any_size_model_gets_at_least_the_minimum_side(size, expected):
    """(width, height) in, (height, width) out: a short side under 32 enlarged to 32, the long side at most 512."""
    assert target_size(size, (None, None)) == expected
    assert fit_image(Image.new("RGB", size), (None, None, 3)).shape == (*expected, 3)


def _valid_convolutions(keras, blocks):
    """Any-size input; ``blocks`` times (3x3 valid convolution, 2x2 pooling), then one more 3x3 convolution."""
    inputs = keras.Input((None, None, 3))
    x = inputs
    for index in range(blocks):
        x = keras.layers.Conv2D(2, 3, name=f"conv_{index}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool_{index}")(x)
    x = keras.layers.Conv2D(2, 3, name="last")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("size", [(1, 1), (50, 1), (1, 50), (7, 7)])
def test_tiny_images_run_through_a_fully_convolutional_model(keras, size):
    from actviz.inputs.batch import to_batch
    from actviz.core.probe import Probe

    probe = Probe(_valid_convolutions(keras, 1))  # needs 8 x 8 at least: 8 -> 6 -> 3 -> 1
    prepared = to_batch(Image.new("RGB", size, (200, 100, 50)), probe, preprocess_as="rescale")
    pixels, batch = prepared.pixels[0], prepared.inputs
    result = probe.run(batch)
    assert min(pixels.shape[:2]) == 32 and result.predictions[0].shape == (1, 2)


def test_image_too_small_for_the_model_says_the_minimum(keras):
    """Three blocks: 38 -> 36 -> 18 -> 16 -> 8 -> 6 -> 3 -> 1, worked out by hand; 37 ends at 0."""
    from actviz.inputs.batch import to_batch
    from actviz.core.probe import Probe

    probe = Probe(_valid_convolutions(keras, 3))
    batch = to_batch(Image.new("RGB", (7, 7)), probe, preprocess_as="rescale").inputs
    with pytest.raises(ImageError, match="needs images of at least 38 x 38 pixels") as caught:
        probe.run(batch)
    assert "32 x 32" in str(caught.value) and "\x1b" not in str(caught.value)
    assert probe.run(np.zeros((1, 38, 38, 3), np.float32)).predictions[0].shape == (1, 2)
