"""Width folding, trimming and header keys shared by the import modules."""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal

# U+FF01..U+FF5E are the full-width forms of ASCII "!".."~"; U+3000 is the ideographic space.
_WIDE_ASCII = range(0xFF01, 0xFF5F)
_FOLD_ALNUM: dict[int, int] = {c: c - 0xFEE0 for c in _WIDE_ASCII if chr(c - 0xFEE0).isalnum()}
_FOLD_ALNUM[0x3000] = 0x20
_FOLD_ALL: dict[int, int] = {c: c - 0xFEE0 for c in _WIDE_ASCII}
_FOLD_ALL[0x3000] = 0x20
_FOLD_ALL[0xFFE5] = 0xA5  # ￥ → ¥

_EDGE_SPACE = re.compile(r"^[\s\u200b-\u200d\u2060\ufeff]+|[\s\u200b-\u200d\u2060\ufeff]+$")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
# Two or more spaces, or any other blank but a line break (tab, ideographic space ...).
_INNER_SPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_HEADER_DROP = re.compile(r"[\s_\-.·:*#'\"`/\\|]+")
_BRACKETED = re.compile(r"[(\[{<（【《「].*?[)\]}>）】》」]")


def fold_width(text: str, *, punctuation: bool = True) -> str:
    """Full-width ASCII (Ａ１２，) to half-width (A12,); Chinese characters are left alone.

    With ``punctuation=False`` only letters, digits and the ideographic space are folded, so
    Chinese text keeps its own punctuation (``青禾科技（上海）有限公司``).
    """
    if text.isascii():
        return text
    return text.translate(_FOLD_ALL if punctuation else _FOLD_ALNUM)


def trim(text: str) -> str:
    """Strip whitespace, including ideographic and zero-width spaces and stray BOMs."""
    text = text.strip()
    if text and (text[0] in _ZERO_WIDTH or text[-1] in _ZERO_WIDTH):
        return _EDGE_SPACE.sub("", text)
    return text


def squeeze(text: str) -> str:
    """Runs of spaces and tabs become one space (line breaks are kept)."""
    return _INNER_SPACE.sub(" ", text)


def header_key(header: str) -> str:
    """A header or synonym made comparable: ``" Customer_Name "`` → ``customername``."""
    return _HEADER_DROP.sub("", unicodedata.normalize("NFKC", header).casefold())


def header_bare_key(header: str) -> str:
    """:func:`header_key` without bracketed hints: ``金额（元）*`` → ``金额``."""
    return header_key(_BRACKETED.sub("", unicodedata.normalize("NFKC", header)))


def number_text(value: int | float | Decimal) -> str:
    """A number as a person writes it: integers without ``.0``, fixed notation, never
    ``1.2e-05`` (``repr`` gives the shortest exact digits); NaN and infinities as ``""``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return "" if not value.is_finite() else format(value, "f")
    return str(value)
