"""Cell normalisation and per-row validation of imported data (no database involved).

Each ``parse_*`` function turns one cell's text into a value or raises :class:`CellError` with a
code and a message; :func:`clean_row` applies them to a row through a mapping and collects every
problem of the row as :class:`RowError` (field, message, raw value). Empty cells are left out of
the values, so an "update" import never blanks a field the file does not fill.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from app.schemas.customer import Gender, Kind, Level
from app.services.config import MAX_TEXT as CUSTOM_TEXT_MAX
from app.services.imports._text import fold_width, squeeze, trim
from app.services.imports.mapping import (
    CUSTOM_PREFIX,
    CustomFieldLike,
    Entity,
    ImportField,
    import_fields,
)
from app.services.normalize import normalize_email, normalize_name, normalize_phone

# Cells that mean "nothing here" in exported spreadsheets.
EMPTY_MARKERS = frozenset({"-", "--", "—", "——", "/", "n/a", "na", "null", "none", "nil", "无"})
MAX_PHONES = 10
MIN_YEAR, MAX_YEAR = 1900, 2199
# Money: at most 14 digits, 2 of them decimals (app.schemas.opportunity.Money).
MAX_CENTS = 10**14 - 1


class CellError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one row: the field (mapping key), what is wrong, and the cell as given."""

    field: str
    message: str
    value: str
    code: str = "invalid"
    column: int | None = None


# --- text -------------------------------------------------------------------------------------


def clean_text(raw: str, *, multiline: bool = False) -> str:
    """Trimmed; full-width letters, digits and spaces folded (Chinese punctuation kept); runs of
    spaces squeezed; line breaks kept only in multi-line text."""
    text = fold_width(raw.replace("\r\n", "\n").replace("\r", "\n"), punctuation=False)
    if not multiline:
        text = text.replace("\n", " ")
    return trim(squeeze(text))


def is_empty(raw: str) -> bool:
    text = trim(raw)
    return not text or text.casefold() in EMPTY_MARKERS


def _code(raw: str) -> str:
    """A structured value (number, date, code): trimmed and fully width-folded."""
    return trim(fold_width(raw))


# --- phones and e-mail ------------------------------------------------------------------------

_PHONE_SPLIT = re.compile(r"[,;/、|\n]+")
_BRACKETED_PREFIX = re.compile(r"^\((\+?\d{1,4})\)")
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?E\+?\d+$", re.IGNORECASE)
_EMAIL = re.compile(
    r"^(?![.])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(?<![.])@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$"
)


def parse_phone(raw: str) -> str:
    """One phone number, normalised by :func:`app.services.normalize.normalize_phone`."""
    text = _code(raw)
    if _SCIENTIFIC.match(text):
        raise CellError(
            "invalid_phone",
            "the number was shortened to scientific notation by Excel; format the column as text",
        )
    # "(+86) 138..." is common; the shared normaliser wants the "+" first.
    number = normalize_phone(_BRACKETED_PREFIX.sub(r"\1 ", text))
    if number is None:
        raise CellError("invalid_phone", "not a phone number")
    return number


def parse_phones(raw: str) -> list[str]:
    """The phone numbers in a cell (separated by , ; / 、 or line breaks), without repeats."""
    numbers: list[str] = []
    for part in _PHONE_SPLIT.split(fold_width(raw)):
        if trim(part):
            number = parse_phone(part)
            if number not in numbers:
                numbers.append(number)
    return numbers


def parse_email(raw: str, *, max_length: int = 254) -> str:
    """Normalised (:func:`app.services.normalize.normalize_email`) and syntax-checked."""
    email = normalize_email(_code(raw).replace("。", "."))
    if email is None or not _EMAIL.match(email) or ".." in email:
        raise CellError("invalid_email", "not an e-mail address")
    if len(email) > max_length:
        raise CellError("too_long", f"at most {max_length} characters")
    return email


# --- dates ------------------------------------------------------------------------------------

_CN_UNIT_SPACES = re.compile(r"\s*([年月日号时点分秒])\s*")
_YMD = re.compile(
    r"^(?P<y>\d{4})(?:(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"
    r"|年(?P<cm>\d{1,2})月(?P<cd>\d{1,2})[日号]?)(?P<rest>.*)$"
)
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?P<rest>(?:[T ].*)?)$")
_YEAR_LAST = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})(?P<rest>.*)$"
)
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")
_TIME = re.compile(
    r"^(?:T|\s+)?(?P<ap1>上午|下午|晚上|凌晨|中午)?\s*"
    r"(?:(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?)?"
    r"|(?P<ch>\d{1,2})[时点](?:(?P<cmi>\d{1,2})分(?:(?P<cs>\d{1,2})秒)?)?)"
    r"\s*(?P<ap2>AM|PM)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)


def _date(year: int, month: int, day: int, raw_hint: str) -> dt.date:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CellError("invalid_date", f"the year {year} is out of range")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError("invalid_date", f"there is no such date ({raw_hint})") from None


def _time(rest: str) -> tuple[dt.time, dt.tzinfo | None]:
    rest = rest.strip()
    if not rest:
        return dt.time(0), None
    match = _TIME.match(rest)
    if match is None:
        raise CellError("invalid_date", "not a date or time")
    g = match.groupdict()
    hour = int(g["h"] if g["h"] is not None else g["ch"])
    minute = int(g["mi"] or g["cmi"] or 0)
    second = int(g["s"] or g["cs"] or 0)
    micro = int((g["frac"] or "0")[:6].ljust(6, "0"))
    meridiem = g["ap1"] or g["ap2"]
    if meridiem is not None:
        if not 1 <= hour <= 12:
            raise CellError("invalid_date", "with AM/PM the hour is 1–12")
        afternoon = meridiem in ("PM", "下午", "晚上") or (meridiem == "中午" and hour != 11)
        hour = hour % 12 + (12 if afternoon else 0)
    try:
        clock = dt.time(hour, minute, second, micro)
    except ValueError:
        raise CellError("invalid_date", "not a valid time of day") from None
    zone: dt.tzinfo | None = None
    if g["tz"]:
        zone = dt.UTC if g["tz"] == "Z" else _offset(g["tz"])
    return clock, zone


def _offset(text: str) -> dt.tzinfo:
    digits = text[1:].replace(":", "")
    delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    if delta >= dt.timedelta(hours=24):
        raise CellError("invalid_date", "not a valid time-zone offset")
    return dt.timezone(-delta if text[0] == "-" else delta)


def _from_serial(text: str) -> dt.datetime:
    # Excel's day 1 is 1900-01-01 and it counts a 29 Feb 1900 that never was, so from day 61 on
    # the serial is the number of days since 1899-12-30; five-digit serials are 1927–2173.
    value = Decimal(text)
    moment = _EXCEL_EPOCH + dt.timedelta(days=float(value))
    return (
        moment.replace(microsecond=0)
        if moment.microsecond < 500_000
        else (moment.replace(microsecond=0) + dt.timedelta(seconds=1))
    )


def _parse_moment(raw: str) -> tuple[dt.date, dt.time, dt.tzinfo | None]:
    text = _CN_UNIT_SPACES.sub(r"\1", _code(raw).upper())
    if not text:
        raise CellError("invalid_date", "not a date")
    if _SERIAL.match(text):
        moment = _from_serial(text)
        _date(moment.year, moment.month, moment.day, text)
        return moment.date(), moment.time(), None
    if (match := _YMD.match(text)) is not None:
        month = match["m"] or match["cm"]
        day = match["d"] or match["cd"]
        date = _date(int(match["y"]), int(month), int(day), text)
        return (date, *_time(match["rest"]))
    if (match := _COMPACT.match(text)) is not None:
        date = _date(int(match["y"]), int(match["m"]), int(match["d"]), text)
        return (date, *_time(match["rest"]))
    if (match := _YEAR_LAST.match(text)) is not None:
        a, b, year = int(match["a"]), int(match["b"]), int(match["y"])
        if a > 12 and b <= 12:
            day, month = a, b
        elif b > 12 and a <= 12:
            month, day = a, b
        elif a == b:
            month = day = a
        else:
            raise CellError(
                "ambiguous_date",
                f"{match['a']}{match['sep']}{match['b']} could be month/day or day/month; "
                "write the date as YYYY-MM-DD",
            )
        date = _date(year, month, day, text)
        return (date, *_time(match["rest"]))
    raise CellError("invalid_date", "not a date (write it as YYYY-MM-DD)")


def parse_date(raw: str) -> dt.date:
    """2026-11-23, 2026/11/23, 2026.11.23, 20261123, 2026年11月23日, 23/11/2026 or 11/23/2026
    (only when day and month cannot be mixed up), an Excel serial number such as 46349, or any of
    these with a time (which is dropped)."""
    return _parse_moment(raw)[0]


def parse_datetime(raw: str, tz: dt.tzinfo) -> dt.datetime:
    """A time-zone-aware moment; a date or time without an offset is taken to be in ``tz``."""
    date, clock, zone = _parse_moment(raw)
    return dt.datetime.combine(date, clock, tzinfo=zone or tz)


# --- numbers ----------------------------------------------------------------------------------

_GROUPED = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_CURRENCY_PREFIXES = ("人民币", "RMB", "CNY", "¥")
_CURRENCY_SUFFIXES = ("人民币", "RMB", "CNY", "元", "圆", "块")
_MULTIPLIERS = (("千万", 10**7), ("百万", 10**6), ("亿", 10**8), ("万", 10**4), ("千", 10**3))
_FOREIGN_CURRENCY = re.compile(r"[$€£₩]|USD|EUR|HKD|JPY|GBP")


def _decimal(text: str) -> Decimal:
    """Digits with an optional sign, decimal point and thousands separators (1,234.5)."""
    text = text.replace(" ", "")
    if "," in text:
        if not _GROUPED.match(text):
            raise CellError("invalid_number", "not a number (use . for decimals)")
        text = text.replace(",", "")
    if not _PLAIN_NUMBER.match(text):
        raise CellError("invalid_number", "not a number")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CellError("invalid_number", "not a number") from None


def parse_money_cents(raw: str) -> int:
    """Yuan as integer cents: ``¥1,234.50`` → 123450, ``1234.5元`` → 123450, ``1.2万`` →
    1200000. Fractions of a cent are rounded half up (spreadsheets compute prices)."""
    text = _code(raw).replace("￥", "¥").replace(" ", "").upper()
    if _FOREIGN_CURRENCY.search(text):
        raise CellError("invalid_money", "only amounts in yuan (CNY) can be imported")
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    for prefix in _CURRENCY_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    for suffix in _CURRENCY_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    factor = 1
    for word, multiplier in _MULTIPLIERS:
        if text.endswith(word):
            text, factor = text[: -len(word)], multiplier
            break
    if text.startswith("-"):
        negative, text = not negative, text[1:]
    try:
        value = _decimal(text)
    except CellError:
        raise CellError("invalid_money", "not an amount of money") from None
    cents = int((value * factor * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if cents > MAX_CENTS:
        raise CellError("out_of_range", "the amount is too large")
    return -cents if negative else cents


def parse_int(raw: str) -> int:
    """A whole number: ``1,000``, ``3``, ``3.0``; not ``3.5``."""
    value = _decimal(_code(raw))
    if value != value.to_integral_value():
        raise CellError("invalid_number", "not a whole number")
    return int(value)


def parse_number(raw: str) -> int | float:
    """An int when whole, else a float."""
    value = _decimal(_code(raw))
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise CellError("invalid_number", "not a number")
    return number


_TRUE = frozenset({"是", "对", "√", "✓", "✔", "y", "yes", "true", "1", "t", "主要"})
_FALSE = frozenset({"否", "不是", "×", "✗", "x", "n", "no", "false", "0", "f"})


def parse_bool(raw: str) -> bool:
    text = _code(raw).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError("invalid_choice", "expected yes or no (是/否)")


# --- enums of the customer schema -------------------------------------------------------------

# Words people write for each value of the schema's Literals; the keys must be exactly the
# Literal's values (checked at import time below).
ENUM_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "kind": {
        "company": (
            "公司",
            "企业",
            "单位",
            "机构",
            "组织",
            "企业客户",
            "公司客户",
            "b2b",
            "organization",
            "organisation",
            "business",
        ),
        "person": (
            "个人",
            "个体",
            "个人客户",
            "自然人",
            "消费者",
            "b2c",
            "individual",
            "consumer",
            "private",
        ),
    },
    "level": {
        "A": ("a级", "a类", "a类客户", "a级客户", "重要客户"),
        "B": ("b级", "b类", "b类客户", "b级客户", "普通客户"),
        "C": ("c级", "c类", "c类客户", "c级客户", "一般客户"),
    },
    "gender": {
        "male": ("男", "男性", "男士", "先生", "m", "man"),
        "female": ("女", "女性", "女士", "小姐", "f", "woman"),
    },
}
# Values that mean "not given" for an enum (no error, no value).
ENUM_UNKNOWN = {"gender": frozenset({"未知", "保密", "不详", "unknown", "other"})}

_SCHEMA_ENUMS: dict[str, tuple[str, ...]] = {
    "kind": typing.get_args(Kind),
    "level": typing.get_args(Level),
    "gender": typing.get_args(Gender),
}
for _name, _values in _SCHEMA_ENUMS.items():
    if set(ENUM_WORDS[_name]) != set(_values):
        raise RuntimeError(f"import words for {_name} do not match the schema's {_values}")
_ENUM_LOOKUP: dict[str, dict[str, str]] = {
    name: {
        word.casefold(): value
        for value, words in ENUM_WORDS[name].items()
        for word in (value, *words)
    }
    for name in ENUM_WORDS
}


def parse_enum(field_key: str, raw: str, choices: Sequence[str]) -> str | None:
    """The schema value for a word (``男`` → ``male``, ``A级`` → ``A``); None for "unknown"."""
    text = _code(raw).casefold().replace(" ", "")
    if text in ENUM_UNKNOWN.get(field_key, ()):
        return None
    value = _ENUM_LOOKUP.get(field_key, {}).get(text)
    if value is None:
        value = next((c for c in choices if c.casefold() == text), None)
    if value is None:
        raise CellError("invalid_choice", f"expected one of: {', '.join(choices)}")
    return value


_LIST_SPLIT = re.compile(r"[,;、|/\n]+")


def parse_list(raw: str) -> list[str]:
    """Names separated by , ; 、 | / or line breaks, trimmed, without repeats."""
    items: list[str] = []
    for part in _LIST_SPLIT.split(fold_width(raw)):
        item = clean_text(part)
        if item and item not in items:
            items.append(item)
    return items


# --- custom fields ----------------------------------------------------------------------------


def _option(definition: CustomFieldLike, text: str) -> str:
    wanted = clean_text(text).casefold()
    for option in definition.options:
        if clean_text(option).casefold() == wanted:
            return option
    raise CellError("invalid_choice", f"expected one of: {', '.join(definition.options)}")


def parse_custom(definition: CustomFieldLike, raw: str) -> Any:
    """A custom field's JSON value by its type (text, number, date, single or multi select)."""
    kind = definition.type
    if kind == "number":
        return parse_number(raw)
    if kind == "date":
        return parse_date(raw).isoformat()
    if kind == "single_select":
        return _option(definition, raw)
    if kind == "multi_select":
        chosen = {_option(definition, item) for item in parse_list(raw)}
        return [o for o in definition.options if o in chosen]
    text = clean_text(raw, multiline=True)
    if len(text) > CUSTOM_TEXT_MAX:
        raise CellError("too_long", f"at most {CUSTOM_TEXT_MAX} characters")
    return text


# --- rows -------------------------------------------------------------------------------------


def _check_length(text: str, f: ImportField) -> str:
    if f.max_length is not None and len(text) > f.max_length:
        raise CellError("too_long", f"at most {f.max_length} characters")
    return text


def _check_range(value: float, f: ImportField) -> None:
    if f.minimum is not None and value < f.minimum:
        raise CellError("out_of_range", f"must be at least {f.minimum:g}")
    if f.maximum is not None and value > f.maximum:
        raise CellError("out_of_range", f"must be at most {f.maximum:g}")


class RowCleaner:
    """Cleans rows of one file: the mapping and field table are worked out once."""

    def __init__(
        self,
        entity: Entity,
        mapping: Mapping[int, str],
        *,
        custom_fields: Sequence[CustomFieldLike] = (),
        tz: dt.tzinfo | None = None,
        today: dt.date | None = None,
    ) -> None:
        fields = {f.key: f for f in import_fields(entity, custom_fields)}
        unknown = sorted(set(mapping.values()) - fields.keys())
        if unknown:
            raise ValueError(f"not importable {entity} fields: {', '.join(unknown)}")
        self.entity = entity
        self.columns = sorted((column, fields[key]) for column, key in mapping.items())
        self.mapped = frozenset(mapping.values())
        self.fields = fields
        self.tz = tz if tz is not None else _business_tz()
        self.today = today or dt.datetime.now(self.tz).date()

    def clean(self, row: Sequence[str]) -> tuple[dict[str, Any], list[RowError]]:
        values: dict[str, Any] = {}
        errors: list[RowError] = []
        for column, f in self.columns:
            raw = row[column] if column < len(row) else ""
            if is_empty(raw):
                continue
            try:
                self._put(values, f, raw)
            except CellError as error:
                errors.append(RowError(f.key, error.message, raw, error.code, column))
        _ROW_RULES[self.entity](self, values, errors)
        return values, errors

    def _put(self, values: dict[str, Any], f: ImportField, raw: str) -> None:
        kind = f.kind
        if kind in ("text", "multiline"):
            text = clean_text(raw, multiline=kind == "multiline")
            if text:
                values[f.target] = _check_length(text, f)
        elif kind == "phone":
            phones: list[str] = list(values.get(f.target, []))
            phones.extend(p for p in parse_phones(raw) if p not in phones)
            if len(phones) > MAX_PHONES:
                raise CellError("too_many", f"at most {MAX_PHONES} phone numbers")
            values[f.target] = phones
        elif kind == "single_phone":
            values[f.target] = parse_phone(raw)
        elif kind == "email":
            values[f.target] = parse_email(raw, max_length=f.max_length or 254)
        elif kind == "date":
            date = parse_date(raw)
            if f.key == "birth_date" and not dt.date(1900, 1, 1) <= date <= self.today:
                raise CellError("out_of_range", "a birth date lies between 1900-01-01 and today")
            values[f.target] = date
        elif kind == "datetime":
            values[f.target] = parse_datetime(raw, self.tz)
        elif kind == "money":
            cents = parse_money_cents(raw)
            if cents < 0:
                raise CellError("out_of_range", "must not be negative")
            values[f.target] = cents
        elif kind in ("int", "id"):
            number = parse_int(raw)
            if kind == "id" and number < 1:
                raise CellError("out_of_range", "an id is a positive whole number")
            _check_range(number, f)
            values[f.target] = number
        elif kind == "float":
            real = float(_decimal(_code(raw)))
            _check_range(real, f)
            values[f.target] = real
        elif kind == "enum":
            choice = parse_enum(f.key, raw, f.choices)
            if choice is not None:
                values[f.target] = choice
        elif kind == "bool":
            values[f.target] = parse_bool(raw)
        elif kind == "list":
            items = parse_list(raw)
            for item in items:
                _check_length(item, f)
            if f.maximum is not None and len(items) > f.maximum:
                raise CellError("too_many", f"at most {f.maximum:g} items")
            if items:
                values[f.target] = items
        else:  # custom
            assert f.custom is not None
            values.setdefault(f.target, {})[f.custom.key] = parse_custom(f.custom, raw)

    def add_missing(self, errors: list[RowError], key: str, message: str | None = None) -> None:
        f = self.fields[key]
        column = next((c for c, g in self.columns if g.key == key), None)
        errors.append(RowError(key, message or f"{f.label_en} is required", "", "required", column))


def _failed(errors: list[RowError], *keys: str) -> bool:
    return any(e.field in keys for e in errors)


def _customer_rules(cleaner: RowCleaner, values: dict[str, Any], errors: list[RowError]) -> None:
    if "name" in values:
        values["name_normalized"] = normalize_name(values["name"])
    elif not _failed(errors, "name"):
        cleaner.add_missing(errors, "name")
    if "email" in values:
        values["email_normalized"] = values["email"]
    if ("lat" in values) != ("lng" in values) and not _failed(errors, "lat", "lng"):
        cleaner.add_missing(errors, "lng" if "lat" in values else "lat", "lat and lng go together")
    for f in cleaner.fields.values():
        if (
            f.custom is not None
            and f.custom.required
            and f.key in cleaner.mapped
            and f.custom.key not in values.get("custom_fields", {})
            and not _failed(errors, f.key)
        ):
            cleaner.add_missing(errors, f.key)


def _customer_reference(
    cleaner: RowCleaner, values: dict[str, Any], errors: list[RowError]
) -> None:
    keys = ("customer_id", "customer_name", "customer_phone")
    if not any(k in values for k in keys) and not _failed(errors, *keys):
        mapped = [k for k in keys if k in cleaner.mapped] or ["customer_name"]
        cleaner.add_missing(errors, mapped[0], "the customer is required (name, id or phone)")


def _contact_rules(cleaner: RowCleaner, values: dict[str, Any], errors: list[RowError]) -> None:
    if "name" not in values and not _failed(errors, "name"):
        cleaner.add_missing(errors, "name")
    _customer_reference(cleaner, values, errors)


def _order_rules(cleaner: RowCleaner, values: dict[str, Any], errors: list[RowError]) -> None:
    _customer_reference(cleaner, values, errors)
    if "ordered_at" not in values and not _failed(errors, "ordered_at"):
        cleaner.add_missing(errors, "ordered_at")
    has_product = "product_name" in values or "sku" in values
    if not has_product and not _failed(errors, "product", "sku"):
        for key in ("quantity", "unit_price", "unit_cost"):
            if cleaner.fields[key].target in values:
                errors.append(
                    RowError(
                        key,
                        "a product line needs a product or SKU",
                        "",
                        "required",
                        next((c for c, g in cleaner.columns if g.key == key), None),
                    )
                )
                break
        else:
            if "amount_cents" not in values and not _failed(errors, "amount"):
                cleaner.add_missing(errors, "amount", "give an amount, or a product or SKU")


_ROW_RULES: dict[Entity, Callable[[RowCleaner, dict[str, Any], list[RowError]], None]] = {
    "customers": _customer_rules,
    "contacts": _contact_rules,
    "orders": _order_rules,
}


def _business_tz() -> dt.tzinfo:
    from app.config import get_settings

    return ZoneInfo(get_settings().business_timezone)


def clean_row(
    entity: Entity,
    mapping: Mapping[int, str],
    row: Sequence[str],
    *,
    custom_fields: Sequence[CustomFieldLike] = (),
    tz: dt.tzinfo | None = None,
) -> tuple[dict[str, Any], list[RowError]]:
    """The cleaned values of one row (keyed by model column) and every problem found in it.

    For many rows build one :class:`RowCleaner` and call ``clean`` on each.
    """
    return RowCleaner(entity, mapping, custom_fields=custom_fields, tz=tz).clean(row)


__all__ = [
    "CUSTOM_PREFIX",
    "CellError",
    "RowCleaner",
    "RowError",
    "clean_row",
    "clean_text",
    "parse_bool",
    "parse_custom",
    "parse_date",
    "parse_datetime",
    "parse_email",
    "parse_enum",
    "parse_int",
    "parse_list",
    "parse_money_cents",
    "parse_number",
    "parse_phone",
    "parse_phones",
]
