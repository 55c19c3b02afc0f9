"""Per-cell normalisation rules and per-row validation errors."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from app.services.imports import CustomFieldSpec, RowCleaner, clean_row
from app.services.imports.clean import (
    CellError,
    clean_text,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_email,
    parse_enum,
    parse_int,
    parse_list,
    parse_money_cents,
    parse_phone,
    parse_phones,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def cell_error(fn: object, *args: object) -> CellError:
    with pytest.raises(CellError) as caught:
        fn(*args)  # type: ignore[operator]
    return caught.value


# --- text ---------------------------------------------------------------------------------


def test_full_width_letters_and_digits_become_half_width() -> None:
    assert clean_text("ＡＢＣ１２３ｘｙｚ") == "ABC123xyz"


def test_chinese_text_and_its_punctuation_are_kept() -> None:
    assert clean_text("　青禾科技（上海）有限公司，研发部　") == "青禾科技（上海）有限公司，研发部"


def test_text_is_trimmed_and_spaces_squeezed() -> None:
    assert clean_text("\u200b  Acme   Ltd \t\n") == "Acme Ltd"
    assert clean_text("line one\r\nline   two", multiline=True) == "line one\nline two"


# --- phones and e-mail --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+86-13812345678",
        "008613812345678",
        "１３８１２３４５６７８",
        " (+86) 138.1234.5678 ",
    ],
)
def test_phone_forms_normalise_to_the_same_number(raw: str) -> None:
    assert parse_phone(raw) == "13812345678"


def test_landline_keeps_its_area_code() -> None:
    assert parse_phone("0571-8888 6666") == "057188886666"


def test_several_phones_in_one_cell() -> None:
    assert parse_phones("13812345678／0571-88886666；138 1234 5678") == [
        "13812345678",
        "057188886666",
    ]


@pytest.mark.parametrize("raw", ["abc", "123", "1.38123E+10", "138x1234"])
def test_not_a_phone(raw: str) -> None:
    assert cell_error(parse_phone, raw).code == "invalid_phone"


def test_scientific_notation_phone_explains_the_excel_problem() -> None:
    assert "text" in cell_error(parse_phone, "1.38123E+10").message


@pytest.mark.parametrize(
    ("raw", "email"),
    [
        ("Zhang.San@Example.COM", "zhang.san@example.com"),
        ("ｚｈａｎｇ＠ｑｑ．ｃｏｍ", "zhang@qq.com"),
        (" li@163。com ", "li@163.com"),
        ("a+tag@sub.example.cn", "a+tag@sub.example.cn"),
    ],
)
def test_email_is_normalised(raw: str, email: str) -> None:
    assert parse_email(raw) == email


@pytest.mark.parametrize(
    "raw",
    ["zhang", "zhang@", "@qq.com", "a@b", "a b@qq.com", "a..b@qq.com", "a@qq..com", "a@-x.cn"],
)
def test_bad_email_syntax(raw: str) -> None:
    assert cell_error(parse_email, raw).code == "invalid_email"


# --- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-23",
        "2026/11/23",
        "2026.11.23",
        "20261123",
        "2026年11月23日",
        "2026 年 11 月 23 日",
        "2026年11月23号",
        "11/23/2026",
        "23/11/2026",
        "23.11.2026",
        "46349",
        "２０２６－１１－２３",
        "2026-11-23 00:00:00",
    ],
)
def test_date_formats(raw: str) -> None:
    assert parse_date(raw) == dt.date(2026, 11, 23)


def test_single_digit_month_and_day() -> None:
    assert parse_date("2026/1/5") == dt.date(2026, 1, 5)
    assert parse_date("2026年1月5日") == dt.date(2026, 1, 5)


def test_day_equal_to_month_is_not_ambiguous() -> None:
    assert parse_date("05/05/2026") == dt.date(2026, 5, 5)


def test_ambiguous_day_and_month_is_refused() -> None:
    error = cell_error(parse_date, "05/06/2026")

    assert error.code == "ambiguous_date"
    assert "YYYY-MM-DD" in error.message


@pytest.mark.parametrize(
    "raw", ["2026-02-30", "2026-13-01", "1990", "tomorrow", "26/11/23", "1800-01-01"]
)
def test_not_a_date(raw: str) -> None:
    assert cell_error(parse_date, raw).code == "invalid_date"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-23 14:30", dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI)),
        ("2026/11/23 9:05:07", dt.datetime(2026, 11, 23, 9, 5, 7, tzinfo=SHANGHAI)),
        ("2026-11-23T14:30:00.250", dt.datetime(2026, 11, 23, 14, 30, 0, 250000, tzinfo=SHANGHAI)),
        ("2026年11月23日 14时30分", dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI)),
        ("2026年11月23日下午2点", dt.datetime(2026, 11, 23, 14, 0, tzinfo=SHANGHAI)),
        ("11/23/2026 2:30 PM", dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI)),
        ("11/23/2026 12:10 AM", dt.datetime(2026, 11, 23, 0, 10, tzinfo=SHANGHAI)),
        ("20261123", dt.datetime(2026, 11, 23, tzinfo=SHANGHAI)),
        ("46349.75", dt.datetime(2026, 11, 23, 18, 0, tzinfo=SHANGHAI)),
        ("2026-11-23T06:30:00Z", dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI)),
        ("2026-11-23T14:30:00+08:00", dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI)),
        ("2026-11-23 14:30:00 -0500", dt.datetime(2026, 11, 24, 3, 30, tzinfo=SHANGHAI)),
    ],
)
def test_datetime_formats(raw: str, expected: dt.datetime) -> None:
    value = parse_datetime(raw, SHANGHAI)

    assert value.tzinfo is not None
    assert value == expected


@pytest.mark.parametrize("raw", ["2026-11-23 25:00", "2026-11-23 13:00 PM", "2026-11-23 soon"])
def test_bad_time_of_day(raw: str) -> None:
    assert cell_error(parse_datetime, raw, SHANGHAI).code == "invalid_date"


# --- numbers and money --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("1234.5", 123450),
        ("¥1,234.50", 123450),
        ("￥1,234.50", 123450),
        ("1234.5元", 123450),
        ("1,234,567.89", 123456789),
        ("1.2万", 1200000),
        ("1.2万元", 1200000),
        ("3亿", 30000000000),
        ("RMB 99", 9900),
        ("人民币100元", 10000),
        ("１２３．４", 12340),
        ("0.005", 1),
        ("-20", -2000),
        ("0", 0),
    ],
)
def test_money_formats(raw: str, cents: int) -> None:
    assert parse_money_cents(raw) == cents


@pytest.mark.parametrize("raw", ["abc", "1,5", "12.3.4", "$100", "€5", "1万万", ""])
def test_not_money(raw: str) -> None:
    assert cell_error(parse_money_cents, raw).code == "invalid_money"


def test_absurd_amount_is_out_of_range() -> None:
    assert cell_error(parse_money_cents, "99999999999亿").code == "out_of_range"


@pytest.mark.parametrize(("raw", "value"), [("3", 3), ("3.0", 3), ("1,000", 1000), ("１２", 12)])
def test_integers(raw: str, value: int) -> None:
    assert parse_int(raw) == value


@pytest.mark.parametrize("raw", ["3.5", "three", "1,00"])
def test_not_an_integer(raw: str) -> None:
    assert cell_error(parse_int, raw).code == "invalid_number"


# --- enums, booleans, lists ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("kind", "公司", "company"),
        ("kind", "企业", "company"),
        ("kind", "Company", "company"),
        ("kind", "个人", "person"),
        ("level", "a", "A"),
        ("level", "B级", "B"),
        ("level", "Ｃ类", "C"),
        ("gender", "男", "male"),
        ("gender", "女士", "female"),
        ("gender", "F", "female"),
        ("gender", "保密", None),
    ],
)
def test_enum_words_map_to_schema_values(field: str, raw: str, value: str | None) -> None:
    choices = {"kind": ("company", "person"), "level": ("A", "B", "C")}
    assert parse_enum(field, raw, choices.get(field, ("male", "female"))) == value


def test_unknown_enum_word_lists_the_choices() -> None:
    error = cell_error(parse_enum, "level", "D", ("A", "B", "C"))

    assert error.code == "invalid_choice"
    assert "A, B, C" in error.message


@pytest.mark.parametrize(("raw", "value"), [("是", True), ("Y", True), ("否", False), ("0", False)])
def test_booleans(raw: str, value: bool) -> None:
    assert parse_bool(raw) is value


def test_list_splits_on_chinese_and_ascii_separators() -> None:
    assert parse_list("VIP、老客户，VIP; 华东 |新客") == ["VIP", "老客户", "华东", "新客"]


# --- rows ---------------------------------------------------------------------------------

CUSTOMER_MAPPING = {0: "name", 1: "phone", 2: "email", 3: "level", 4: "birth_date", 5: "tags"}


def test_clean_customer_row() -> None:
    row = [
        "  杭州青禾科技有限公司 ",
        "+86 138 1234 5678",
        "QH@Example.com",
        "A级",
        "1990/5/1",
        "VIP",
    ]

    values, errors = clean_row("customers", CUSTOMER_MAPPING, row, tz=SHANGHAI)

    assert errors == []
    assert values == {
        "name": "杭州青禾科技有限公司",
        "name_normalized": "杭州青禾科技",
        "phones": ["13812345678"],
        "email": "qh@example.com",
        "email_normalized": "qh@example.com",
        "level": "A",
        "birth_date": dt.date(1990, 5, 1),
        "tag_names": ["VIP"],
    }


def test_empty_cells_are_left_out_so_updates_do_not_blank_fields() -> None:
    values, errors = clean_row(
        "customers", CUSTOMER_MAPPING, ["Acme", "", "  ", "-", "N/A"], tz=SHANGHAI
    )

    assert errors == []
    assert set(values) == {"name", "name_normalized"}


def test_missing_required_name_is_a_row_error() -> None:
    values, errors = clean_row("customers", CUSTOMER_MAPPING, ["", "13812345678"], tz=SHANGHAI)

    assert values == {"phones": ["13812345678"]}
    assert [(e.field, e.code, e.value, e.column) for e in errors] == [("name", "required", "", 0)]


def test_every_bad_cell_of_a_row_is_reported_with_its_raw_value() -> None:
    row = ["Acme", "12ab", "not-an-email", "Z", "2026-02-30", "x"]

    values, errors = clean_row("customers", CUSTOMER_MAPPING, row, tz=SHANGHAI)

    assert [(e.field, e.code, e.value) for e in errors] == [
        ("phone", "invalid_phone", "12ab"),
        ("email", "invalid_email", "not-an-email"),
        ("level", "invalid_choice", "Z"),
        ("birth_date", "invalid_date", "2026-02-30"),
    ]
    assert values["name"] == "Acme"
    assert "phones" not in values


def test_too_long_value_is_reported() -> None:
    values, errors = clean_row("customers", {0: "name"}, ["x" * 201], tz=SHANGHAI)

    assert "name" not in values
    assert errors[0].code == "too_long"
    assert "200" in errors[0].message


def test_birth_date_in_the_future_is_refused() -> None:
    cleaner = RowCleaner(
        "customers", {0: "name", 1: "birth_date"}, tz=SHANGHAI, today=dt.date(2026, 1, 1)
    )

    _, errors = cleaner.clean(["A", "2026-06-01"])

    assert [(e.field, e.code) for e in errors] == [("birth_date", "out_of_range")]


def test_two_phone_columns_merge_into_phones() -> None:
    values, _ = clean_row(
        "customers",
        {0: "name", 1: "phone", 2: "phone_2"},
        ["A", "138 1234 5678", "0571-88886666 / 13812345678"],
        tz=SHANGHAI,
    )

    assert values["phones"] == ["13812345678", "057188886666"]


def test_lat_without_lng_is_an_error() -> None:
    _, errors = clean_row("customers", {0: "name", 1: "lat"}, ["A", "30.2"], tz=SHANGHAI)

    assert [(e.field, e.message) for e in errors] == [("lng", "lat and lng go together")]


def test_latitude_out_of_range() -> None:
    _, errors = clean_row(
        "customers", {0: "name", 1: "lat", 2: "lng"}, ["A", "91", "120"], tz=SHANGHAI
    )

    assert [(e.field, e.code) for e in errors] == [("lat", "out_of_range")]


def test_custom_fields_are_typed_by_their_definition() -> None:
    custom = [
        CustomFieldSpec("budget", "预算", "number"),
        CustomFieldSpec("since", "合作日期", "date"),
        CustomFieldSpec("size", "规模", "single_select", ["小", "中", "大"]),
        CustomFieldSpec("needs", "需求", "multi_select", ["CRM", "ERP", "OA"]),
    ]
    mapping = {0: "name", 1: "cf.budget", 2: "cf.since", 3: "cf.size", 4: "cf.needs"}

    values, errors = clean_row(
        "customers", mapping, ["A", "1,500", "2026年3月1日", "中", "oa、crm"], custom_fields=custom
    )

    assert errors == []
    assert values["custom_fields"] == {
        "budget": 1500,
        "since": "2026-03-01",
        "size": "中",
        "needs": ["CRM", "OA"],
    }


def test_bad_custom_value_and_missing_required_custom_field() -> None:
    custom = [
        CustomFieldSpec("size", "规模", "single_select", ["小", "中", "大"]),
        CustomFieldSpec("budget", "预算", "number", required=True),
    ]

    _, errors = clean_row(
        "customers",
        {0: "name", 1: "cf.size", 2: "cf.budget"},
        ["A", "巨大", ""],
        custom_fields=custom,
    )

    assert [(e.field, e.code) for e in errors] == [
        ("cf.size", "invalid_choice"),
        ("cf.budget", "required"),
    ]


def test_contact_row_needs_a_name_and_a_customer() -> None:
    mapping = {0: "customer_name", 1: "name", 2: "phone", 3: "is_primary"}

    good, good_errors = clean_row("contacts", mapping, ["青禾科技", "张三", "13812345678", "是"])
    _, bad_errors = clean_row("contacts", mapping, ["", "", "13812345678", ""])

    assert good_errors == []
    assert good == {
        "customer_name": "青禾科技",
        "name": "张三",
        "phones": ["13812345678"],
        "is_primary": True,
    }
    assert [(e.field, e.code) for e in bad_errors] == [
        ("name", "required"),
        ("customer_name", "required"),
    ]


def test_clean_order_row() -> None:
    mapping = {
        0: "external_id",
        1: "customer_phone",
        2: "ordered_at",
        3: "product",
        4: "quantity",
        5: "unit_price",
        6: "amount",
        7: "channel",
    }
    row = ["SO-1", "+86 138 1234 5678", "2026/11/23 14:30", "绿茶", "2", "¥49.90", "99.8元", "电商"]

    values, errors = clean_row("orders", mapping, row, tz=SHANGHAI)

    assert errors == []
    assert values == {
        "external_id": "SO-1",
        "customer_phone": "13812345678",
        "ordered_at": dt.datetime(2026, 11, 23, 14, 30, tzinfo=SHANGHAI),
        "product_name": "绿茶",
        "quantity": 2,
        "unit_price_cents": 4990,
        "amount_cents": 9980,
        "channel": "电商",
    }


def test_order_row_errors() -> None:
    mapping = {0: "customer_id", 1: "ordered_at", 2: "amount", 3: "quantity"}

    _, errors = clean_row("orders", mapping, ["0", "", "-5", "0"], tz=SHANGHAI)

    assert [(e.field, e.code) for e in errors] == [
        ("customer_id", "out_of_range"),
        ("amount", "out_of_range"),
        ("quantity", "out_of_range"),
        ("ordered_at", "required"),
    ]


def test_order_line_without_product_and_order_without_amount() -> None:
    mapping = {0: "customer_name", 1: "ordered_at", 2: "amount", 3: "product", 4: "unit_price"}

    _, line_errors = clean_row("orders", mapping, ["A", "2026-11-23", "", "", "10"], tz=SHANGHAI)
    _, empty_errors = clean_row("orders", mapping, ["A", "2026-11-23", "", "", ""], tz=SHANGHAI)
    product_only, product_errors = clean_row(
        "orders", mapping, ["A", "2026-11-23", "", "绿茶", ""], tz=SHANGHAI
    )

    assert [(e.field, e.message) for e in line_errors] == [
        ("unit_price", "a product line needs a product or SKU")
    ]
    assert [e.field for e in empty_errors] == ["amount"]
    assert product_errors == []
    assert product_only["product_name"] == "绿茶"


def test_order_time_without_zone_takes_the_business_time_zone_by_default() -> None:
    values, _ = clean_row(
        "orders", {0: "customer_name", 1: "ordered_at", 2: "amount"}, ["A", "2026-11-23 08:00", "1"]
    )

    assert values["ordered_at"].utcoffset() == dt.timedelta(hours=8)


def test_unknown_field_in_mapping_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        RowCleaner("customers", {0: "nonsense"})


def test_more_than_ten_phones_is_an_error_and_keeps_none_of_that_cell() -> None:
    many = ",".join(f"1381234{i:04d}" for i in range(11))

    values, errors = clean_row("customers", {0: "name", 1: "phone"}, ["A", many], tz=SHANGHAI)

    assert [(e.field, e.code) for e in errors] == [("phone", "too_many")]
    assert "phones" not in values
