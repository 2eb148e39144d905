"""Text burned into a composed film: a built-in 5x7 bitmap font, scaled by whole pixels.

Basic Annotation Box text (PS3.4 H.4.4) is printed on the film, so print-to-archive draws it
into the film's pixels.  The font is part of dicomhub (no font file, no imaging library): the
printable ASCII characters in the classic 5x7 dot-matrix shapes, one cell of 6x8 dots per
character (a column and a row of spacing).  Letters with accents are drawn without them;
any other character is drawn as ``?``.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
from numpy.typing import NDArray

GLYPH_WIDTH = 5
GLYPH_HEIGHT = 7
CELL_WIDTH = GLYPH_WIDTH + 1
CELL_HEIGHT = GLYPH_HEIGHT + 1

_FONT = bytes.fromhex(
    # 0x20-0x2F:  ! " # $ % & ' ( ) * + , - . /
    "0000000000"
    "00005F0000"
    "0007000700"
    "147F147F14"
    "242A7F2A12"
    "2313086462"
    "3649562050"
    "0008070300"
    "001C224100"
    "0041221C00"
    "2A1C7F1C2A"
    "08083E0808"
    "0050300000"
    "0808080808"
    "0060600000"
    "2010080402"
    # 0x30-0x3F: 0-9 : ; < = > ?
    "3E5149453E"
    "00427F4000"
    "4261514946"
    "2141454B31"
    "1814127F10"
    "2745454539"
    "3C4A494930"
    "0171090503"
    "3649494936"
    "064949291E"
    "0036360000"
    "0056360000"
    "0814224100"
    "1414141414"
    "0041221408"
    "0201510906"
    # 0x40-0x4F: @ A-O
    "324979413E"
    "7E1111117E"
    "7F49494936"
    "3E41414122"
    "7F4141221C"
    "7F49494941"
    "7F09090901"
    "3E4149497A"
    "7F0808087F"
    "00417F4100"
    "2040413F01"
    "7F08142241"
    "7F40404040"
    "7F020C027F"
    "7F0408107F"
    "3E4141413E"
    # 0x50-0x5F: P-Z [ \ ] ^ _
    "7F09090906"
    "3E4151215E"
    "7F09192946"
    "4649494931"
    "01017F0101"
    "3F4040403F"
    "1F2040201F"
    "3F4038403F"
    "6314081463"
    "0708700807"
    "6151494543"
    "007F414100"
    "0204081020"
    "0041417F00"
    "0402010204"
    "4040404040"
    # 0x60-0x6F: ` a-o
    "0001020400"
    "2054545478"
    "7F48444438"
    "3844444420"
    "384444487F"
    "3854545418"
    "087E090102"
    "0C5252523E"
    "7F08040478"
    "00447D4000"
    "2040443D00"
    "7F10284400"
    "00417F4000"
    "7C04180478"
    "7C08040478"
    "3844444438"
    # 0x70-0x7E: p-z { | } ~
    "7C14141408"
    "081414187C"
    "7C08040408"
    "4854545420"
    "043F444020"
    "3C4040207C"
    "1C2040201C"
    "3C4030403C"
    "4428102844"
    "0C5050503C"
    "4464544C44"
    "0008364100"
    "00007F0000"
    "0041360800"
    "1008081008"
)
_FIRST, _LAST = 0x20, 0x7E


def _glyph(character: str) -> NDArray[np.bool_]:
    """The 7x5 dots of one character (True: ink)."""
    code = ord(character)
    if not _FIRST <= code <= _LAST:
        code = ord("?")
    columns = _FONT[(code - _FIRST) * GLYPH_WIDTH : (code - _FIRST + 1) * GLYPH_WIDTH]
    rows = np.arange(GLYPH_HEIGHT)[:, None]
    return (np.frombuffer(columns, dtype=np.uint8)[None, :] >> rows & 1).astype(bool)


def printable(text: str) -> str:
    """``text`` in the font's characters: accents dropped, other characters ``?``, one line."""
    plain = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in plain if not unicodedata.combining(c))
    return "".join(
        c if _FIRST <= ord(c) <= _LAST else ("?" if c.isprintable() else " ") for c in kept
    )


def text_mask(text: str, scale: int = 1) -> NDArray[np.bool_]:
    """The ink of ``text`` on one line, ``CELL_HEIGHT * scale`` rows high (True: ink)."""
    if scale < 1:
        raise ValueError(f"text scale must be at least 1, not {scale}")
    line = printable(text)
    mask = np.zeros((CELL_HEIGHT, CELL_WIDTH * len(line)), dtype=bool)
    for index, character in enumerate(line):
        left = index * CELL_WIDTH
        mask[:GLYPH_HEIGHT, left : left + GLYPH_WIDTH] = _glyph(character)
    return np.asarray(np.kron(mask, np.ones((scale, scale), dtype=bool)), dtype=bool)


def draw_text(
    image: NDArray[Any],
    text: str,
    *,
    x: int,
    y: int,
    width: int,
    height: int,
    value: float,
    scale: int = 1,
) -> None:
    """Draw ``text`` in ``value`` into the box (x, y, width, height) of ``image``, left-aligned,
    centred vertically, clipped to the box; grayscale or RGB ``image`` of any dtype
    (a composed film is uint8)."""
    mask = text_mask(text, scale)[:height, :width]
    if not mask.size:
        return
    top = y + max(0, (height - mask.shape[0]) // 2)
    region = image[top : top + mask.shape[0], x : x + mask.shape[1]]
    mask = mask[: region.shape[0], : region.shape[1]]
    region[mask] = value
