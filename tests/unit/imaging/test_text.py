"""The built-in bitmap font annotations are burned in with."""

from __future__ import annotations

import numpy as np
import pytest

from dicomhub.imaging.text import CELL_HEIGHT, CELL_WIDTH, draw_text, printable, text_mask


def test_glyphs() -> None:
    mask = text_mask("I")
    assert mask.shape == (CELL_HEIGHT, CELL_WIDTH)
    assert mask[:7, 2].all()  # the stem of the I
    assert not mask[7].any()  # the spacing row
    assert not text_mask(" ").any()
    assert text_mask("AB", scale=3).shape == (3 * CELL_HEIGHT, 3 * 2 * CELL_WIDTH)
    assert (text_mask("?") == text_mask("\u6f22")).all()  # no glyph: drawn as ?
    with pytest.raises(ValueError):
        text_mask("A", scale=0)


def test_printable() -> None:
    assert printable("Dr. M\u00fcller\tCT") == "Dr. Muller CT"


def test_draw_text_is_clipped_to_its_box() -> None:
    image = np.zeros((40, 40))
    draw_text(image, "WWWWWWWWWW", x=10, y=10, width=20, height=10, value=255.0)
    ink = np.argwhere(image == 255)
    assert ink.size
    assert ink[:, 0].min() >= 10 and ink[:, 0].max() < 20
    assert ink[:, 1].min() >= 10 and ink[:, 1].max() < 30
