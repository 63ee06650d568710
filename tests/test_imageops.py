import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.generation import imageops
from studio.images import to_mask


def gradient(width, height):
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None].repeat(width, 1)
    return Image.fromarray(np.concatenate([x, y, 255 - x], axis=2), "RGB")


def square_mask(size, box):
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


@pytest.mark.parametrize("mode", range(4))
def test_every_resize_mode_gives_the_target_size(mode):
    assert imageops.resize_image(gradient(100, 50), 64, 96, mode).size == (64, 96)


def test_crop_and_resize_keeps_the_centre_and_fill_stretches_edges():
    image = Image.new("RGB", (200, 100), "red")
    image.paste(Image.new("RGB", (100, 100), "blue"), (50, 0))
    cropped = np.asarray(imageops.resize_image(image, 64, 64, imageops.CROP_AND_RESIZE))
    assert (cropped[32, 32] == [0, 0, 255]).all() and cropped[:, 2, 0].mean() < 20  # red sides cropped away
    filled = np.asarray(imageops.resize_image(Image.new("RGB", (100, 50), "green"), 64, 64, imageops.RESIZE_AND_FILL))
    assert (filled[0, 32] == [0, 128, 0]).all() and (filled[-1, 32] == [0, 128, 0]).all()  # bands take edge rows


def test_mask_blur_is_soft_but_never_reaches_beyond_its_radius():
    mask = square_mask((64, 64), (20, 20, 40, 40))
    soft = np.asarray(imageops.blur_mask(mask, 4))
    assert soft[30, 30] == 255 and 0 < soft[30, 42] < 255
    beyond = np.asarray(imageops.dilate(mask, 4)) == 0
    assert (soft[beyond] == 0).all()


def test_to_mask_binarises_inverts_and_reads_alpha():
    rgba = Image.new("RGBA", (8, 8), (255, 255, 255, 0))
    rgba.putpixel((1, 1), (255, 255, 255, 255))
    mask = np.asarray(to_mask(rgba))
    assert mask[1, 1] == 255 and mask.sum() == 255
    assert np.asarray(to_mask(rgba, invert=True))[1, 1] == 0


def test_crop_region_covers_mask_plus_padding_at_target_aspect():
    mask = square_mask((200, 100), (90, 40, 110, 60))
    box = imageops.crop_region(mask, 10, 64, 64)
    assert box.left <= 80 and box.top <= 30 and box.right >= 121 and box.bottom >= 71
    width, height = box.size
    assert abs(width / height - 1.0) < 0.05
    edge = imageops.crop_region(square_mask((100, 100), (0, 0, 5, 5)), 32, 64, 64)
    assert edge.left == 0 and edge.top == 0  # clamped inside the image
    with pytest.raises(ValueError, match="mask is empty"):
        imageops.crop_region(Image.new("L", (10, 10)), 4, 64, 64)


def test_paste_back_keeps_exact_bytes_where_alpha_is_zero():
    original, generated = gradient(64, 64), Image.new("RGB", (64, 64), "white")
    alpha = imageops.blur_mask(square_mask((64, 64), (16, 16, 31, 31)), 3)
    out = np.asarray(imageops.paste_back(original, generated, alpha))
    untouched = np.asarray(alpha) == 0
    assert (out[untouched] == np.asarray(original)[untouched]).all()
    assert (out[23, 23] == 255).all()


def test_fill_replaces_masked_area_with_surrounding_colour():
    image = Image.new("RGB", (64, 64), "blue")
    image.paste(Image.new("RGB", (16, 16), "red"), (24, 24))
    filled = np.asarray(imageops.fill_masked(image, square_mask((64, 64), (20, 20, 44, 44))))
    assert filled[32, 32, 2] > 200 and filled[32, 32, 0] < 60
