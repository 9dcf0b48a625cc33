"""`stylenet.imageio`: every image mode comes out upright 8-bit RGB; bad files raise one clear error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from stylenet.errors import StylenetError
from stylenet.imageio import UnreadableImageError, image_size, list_images, open_rgb, to_rgb

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """A random RGB photo: JPEG cannot compress it to almost nothing, so half a file is truly truncated."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def halves(width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """Two flat colour halves, so a rotation or flip is visible in where each colour ends up."""
    image = Image.new("RGB", (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def assert_close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 0) -> None:
    """Compare colours channel by channel; JPEG needs a tolerance, lossless formats none."""
    assert len(pixel) == len(expected), (pixel, expected)
    assert all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True)), (pixel, expected)


# --- modes that must be converted ---------------------------------------------------------------


def test_greyscale_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (12, 8), 77).save(path)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert image.size == (12, 8)
    assert_close(image.getpixel((3, 3)), (77, 77, 77))


def test_rgba_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 6), (0, 0, 0, 0))  # fully transparent black: must not stay black
    rgba.paste((255, 0, 0, 255), (5, 0, 10, 6))  # opaque red right half: must keep its colour
    path = tmp_path / "rgba.png"
    rgba.save(path)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert_close(image.getpixel((1, 1)), WHITE)
    assert_close(image.getpixel((8, 1)), RED)


def test_half_transparent_pixels_blend_with_white() -> None:
    image = to_rgb(Image.new("RGBA", (4, 4), (0, 0, 0, 128)))
    assert image.mode == "RGB"
    assert_close(image.getpixel((0, 0)), (127, 127, 127), tolerance=1)


def test_greyscale_with_alpha_becomes_rgb_on_white() -> None:
    image = to_rgb(Image.new("LA", (4, 4), (0, 0)))
    assert image.mode == "RGB"
    assert_close(image.getpixel((0, 0)), WHITE)


def test_palette_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "palette.gif"
    source = halves(10, 6, RED, BLUE).convert("P")
    assert source.mode == "P"
    source.save(path)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert_close(image.getpixel((1, 1)), RED)
    assert_close(image.getpixel((8, 1)), BLUE)


def test_palette_with_transparency_becomes_white(tmp_path: Path) -> None:
    palette = Image.new("P", (6, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    palette.paste(1, (3, 0, 6, 4))
    path = tmp_path / "transparent.png"
    palette.save(path, transparency=0)  # black (index 0) is see-through: shown as white
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert_close(image.getpixel((0, 0)), WHITE)
    assert_close(image.getpixel((5, 0)), RED)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # no ink: white
    cmyk.paste((255, 0, 0, 0), (8, 0, 16, 16))  # full cyan: (0, 255, 255)
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, "JPEG", quality=95)
    with Image.open(path) as stored:
        assert stored.mode == "CMYK"  # the test really exercises a CMYK file
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert image.size == (16, 16)
    assert_close(image.getpixel((2, 8)), WHITE, tolerance=12)
    assert_close(image.getpixel((13, 8)), (0, 255, 255), tolerance=12)


def test_16_bit_greyscale_png_is_rescaled_not_clipped(tmp_path: Path) -> None:
    values = np.full((8, 10), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    values[:, 5:] = 65535  # white in 16 bits
    path = tmp_path / "sixteen.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")  # a 16-bit file, not quietly saved as 8-bit
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert image.size == (10, 8)
    # PIL's own convert("RGB") would clip 32768 to 255; rescaled it is mid-grey.
    assert_close(image.getpixel((1, 1)), (128, 128, 128), tolerance=1)
    assert_close(image.getpixel((8, 1)), WHITE)


def test_16_bit_image_in_memory_is_rescaled() -> None:
    sixteen = Image.fromarray(np.array([[0, 16384, 32768, 65535]], dtype=np.uint16))
    assert sixteen.mode == "I;16"
    image = to_rgb(sixteen)
    assert image.mode == "RGB"
    greys = [image.getpixel((x, 0))[0] for x in range(4)]
    assert greys == pytest.approx([0, 64, 128, 255], abs=1)


def test_32_bit_integer_image_with_16_bit_values_is_rescaled() -> None:
    # Older Pillow versions open 16-bit PNGs as mode "I"; values above 255 mean a 16-bit range.
    image = to_rgb(Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)))
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0))[0] for x in range(3)] == pytest.approx([0, 128, 255], abs=1)


def test_8_bit_values_in_32_bit_image_are_kept() -> None:
    image = to_rgb(Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32)))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path) -> None:
    # Stored 40 wide and 20 high, red left and blue right; orientation 6 means "rotate 90° clockwise
    # to display", so upright it is 20 wide and 40 high with red on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    halves(40, 20, RED, BLUE).save(path, "JPEG", quality=95, exif=exif)
    with Image.open(path) as stored:
        assert stored.size == (40, 20)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert image.size == (20, 40)
    assert_close(image.getpixel((10, 5)), RED, tolerance=40)
    assert_close(image.getpixel((10, 34)), BLUE, tolerance=40)


def test_a_large_jpeg_is_decoded_near_the_size_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    halves(1600, 1200, RED, BLUE).save(path, "JPEG", quality=90)
    reduced = open_rgb(path, at_least=256)
    assert reduced.size == (400, 300)  # a quarter: an eighth (200x150) would fall under 256
    assert_close(reduced.getpixel((100, 150)), RED, tolerance=40)
    assert_close(reduced.getpixel((300, 150)), BLUE, tolerance=40)
    assert open_rgb(path, at_least=1200).size == (1600, 1200)  # no smaller scale keeps 1200 px
    png = tmp_path / "large.png"
    halves(1600, 1200, RED, BLUE).save(png, "PNG")
    assert open_rgb(png, at_least=256).size == (1600, 1200)  # only JPEG scales while decoding


def test_a_quarter_turned_jpeg_decoded_near_a_size_keeps_both_sides_above_it(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    halves(1600, 480, RED, BLUE).save(path, "JPEG", quality=90, exif=exif)
    image = open_rgb(path, at_least=200)
    assert image.size == (240, 800)  # upright, halved twice: 120 px would fall under 200
    assert_close(image.getpixel((120, 100)), RED, tolerance=40)


def _png_with_exif_after_pixels(width: int, height: int, orientation: int) -> bytes:
    """A PNG whose eXIf chunk (an orientation) follows its pixel data, just before the end."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    buffer = io.BytesIO()
    halves(width, height, RED, BLUE).save(buffer, "PNG")
    encoded = buffer.getvalue()
    end = encoded.rindex(b"IEND") - 4  # the IEND chunk's length field
    return encoded[:end] + chunk + encoded[end:]


def test_a_png_size_is_read_without_decoding_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow decodes a whole PNG to look for an eXIf chunk after its pixels; a size check must not.
    rotated = tmp_path / "rotated.png"
    rotated.write_bytes(_png_with_exif_after_pixels(40, 20, orientation=6))
    plain = tmp_path / "plain.png"
    halves(40, 20, RED, BLUE).save(plain)

    def decoded(image: Image.Image) -> None:
        raise AssertionError("decoded")

    with monkeypatch.context() as patched:
        patched.setattr(PngImagePlugin.PngImageFile, "load", decoded)
        assert image_size(plain) == (40, 20) and image_size(rotated) == (40, 20)
    # The late orientation is ignored when decoding too, so the size planned is the size decoded.
    assert open_rgb(rotated).size == (40, 20)


def test_rgb_image_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    original = noise(9, 7)
    original.save(path)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), np.asarray(original))


def test_encoded_bytes_are_decoded() -> None:
    image = open_rgb(jpeg_bytes(Image.new("L", (6, 4), 200)))
    assert image.mode == "RGB"
    assert image.size == (6, 4)
    assert_close(image.getpixel((2, 2)), (200, 200, 200), tolerance=3)


# --- files that cannot be read ------------------------------------------------------------------


def test_zero_byte_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty.jpg") as caught:
        open_rgb(path)
    assert str(path) in str(caught.value)


def test_truncated_jpeg_is_unreadable(tmp_path: Path) -> None:
    data = jpeg_bytes(noise(64, 48))
    whole, path = tmp_path / "whole.jpg", tmp_path / "truncated.jpg"
    whole.write_bytes(data)
    path.write_bytes(data[: len(data) // 2])
    assert open_rgb(whole).size == (64, 48)  # the same bytes, complete, are fine
    with pytest.raises(UnreadableImageError) as caught:
        open_rgb(path)
    assert str(path) in str(caught.value)


def test_text_file_named_jpg_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(UnreadableImageError) as caught:
        open_rgb(path)
    assert str(path) in str(caught.value)


def test_bad_bytes_are_unreadable() -> None:
    with pytest.raises(UnreadableImageError, match="<bytes>"):
        open_rgb(b"GIF89a but nothing after")


def test_unreadable_image_error_is_a_stylenet_error() -> None:
    # Entry points print StylenetError as one line instead of a traceback.
    assert issubclass(UnreadableImageError, StylenetError)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_rgb(tmp_path / "nowhere.jpg")


# --- listing ------------------------------------------------------------------------------------


def test_list_images_is_recursive_sorted_and_skips_other_files(tmp_path: Path) -> None:
    wanted = ["b.png", "a/z.jpg", "a/deep/er/x.JPEG", "c/photo.webp", "c/scan.TIF", "a/anim.gif", "m.bmp"]
    ignored = ["notes.txt", "a/labels.json", "c/photo.jpg.part", "README", "a/deep/data.npy"]
    for name in wanted + ignored:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # listing goes by name only; contents are checked when decoding
    (tmp_path / "folder.jpg").mkdir()  # a folder with an image suffix is not an image
    found = list_images(tmp_path)
    assert found == sorted(tmp_path / name for name in wanted)
    assert all(isinstance(p, Path) for p in found)


def test_list_images_accepts_a_string_and_an_empty_folder(tmp_path: Path) -> None:
    assert list_images(str(tmp_path)) == []
    (tmp_path / "only.txt").write_text("no images here")
    assert list_images(str(tmp_path)) == []


def test_list_images_order_is_stable(tmp_path: Path) -> None:
    # Created out of order: the result must not depend on creation or directory order.
    for name in ["9.png", "1.png", "5/0.png", "0.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["0.png", "1.png", "5/0.png", "9.png"]
