"""Normalisation and masking of names, phones and e-mail (duplicate checks, search, privacy)."""

from __future__ import annotations

import difflib
import re
import unicodedata

_NON_DIGIT = re.compile(r"\D")
_PHONE_CHARS = re.compile(r"^\+?[0-9 \-().]+$")
# Legal-form words that say nothing about which company it is (punctuation already removed).
_LEGAL_FORMS = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "集团公司",
    "分公司",
    "公司",
    "集团",
    "colimited",
    "coltd",
    "limited",
    "ltd",
    "inc",
    "llc",
    "gmbh",
    "corp",
)
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalize_phone(raw: str) -> str | None:
    """Digits only, Chinese country prefix dropped for mobiles; None if it is not a phone number.

    ``+86 138-1234-5678``, ``008613812345678`` and ``13812345678`` all give ``13812345678``.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text or not _PHONE_CHARS.match(text):
        return None
    digits = _NON_DIGIT.sub("", text)
    for prefix in ("0086", "86"):
        rest = digits[len(prefix) :]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            digits = rest
            break
    if not 5 <= len(digits) <= 15:
        return None
    return digits


def normalize_email(raw: str | None) -> str | None:
    if not raw:
        return None
    return unicodedata.normalize("NFKC", raw).strip().lower() or None


def normalize_name(raw: str) -> str:
    """Case-folded, full-width folded, punctuation and legal-form suffixes removed."""
    bare = _PUNCT.sub("", unicodedata.normalize("NFKC", raw).casefold())
    text = bare
    changed = True
    while changed:
        changed = False
        for form in _LEGAL_FORMS:
            if text.endswith(form) and len(text) > len(form):
                text = text[: -len(form)]
                changed = True
    return text or bare


def name_similarity(a: str, b: str) -> float:
    """Similarity 0–1 of two normalised names (Ratcliff/Obershelp, as difflib computes it)."""
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def mask_phone(number: str) -> str:
    """``13812345678`` → ``138****5678``."""
    if len(number) >= 11:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    if len(number) > 4:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * len(number)


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return (local[:1] + "***@" + domain) if local else "***@" + domain


def mask_name(name: str) -> str:
    """Keep just enough to recognise: ``杭州青禾科技有限公司`` → ``杭州******公司``."""
    if len(name) <= 3:
        return name[:1] + "*" * (len(name) - 1)
    keep = 2 if len(name) >= 6 else 1
    return name[:keep] + "*" * (len(name) - 2 * keep) + name[-keep:]


def escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped (use with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mask_text(text: str | None) -> str | None:
    """Free text (an address, a WeChat id): its first third, then ``****``."""
    if not text:
        return text
    return text[: len(text) // 3] + "****"
