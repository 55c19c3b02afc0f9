"""Importable fields per entity and mapping suggestions from Chinese and English headers."""

from __future__ import annotations

from typing import Any

import pytest

from app.models.contract import Order, OrderLine
from app.models.customer import Contact, Customer
from app.services.imports import (
    ENTITIES,
    CustomFieldSpec,
    ImportFileError,
    check_mapping,
    import_fields,
    suggest_mapping,
)
from app.services.imports._text import header_key


def named(headers: list[str], mapping: dict[int, str]) -> dict[str, str]:
    return {headers[column]: key for column, key in mapping.items()}


def columns(model: Any) -> set[str]:
    return {str(c.key) for c in model.__table__.columns}


def length(model: Any, column: str) -> int:
    return int(model.__table__.c[column].type.length)


def test_customer_fields_store_into_customer_columns() -> None:
    targets = {f.target for f in import_fields("customers")}

    # Owner and tags are given by name and resolved to ids by the import job.
    assert targets - {"owner_username", "tag_names"} <= columns(Customer)
    assert {"name", "kind", "phones", "email", "industry", "level", "source", "province"} <= targets
    assert {"city", "address", "gender", "birth_date", "owner_username", "tag_names"} <= targets


def test_contact_and_order_fields_store_into_their_columns() -> None:
    references = {"customer_id", "customer_name", "customer_phone"}
    contact_targets = {f.target for f in import_fields("contacts")}
    order_targets = {f.target for f in import_fields("orders")}

    assert contact_targets - references <= columns(Contact)
    assert order_targets - references - {"product_name", "sku"} <= columns(Order) | columns(
        OrderLine
    )
    assert {"amount_cents", "cost_cents", "unit_price_cents", "unit_cost_cents"} <= order_targets


def test_length_limits_come_from_the_schemas_and_models() -> None:
    fields = {f.key: f for f in import_fields("customers")}
    orders = {f.key: f for f in import_fields("orders")}

    assert fields["name"].max_length == length(Customer, "name") == 200
    assert fields["province"].max_length == 50
    assert fields["owner"].max_length == 64
    assert orders["channel"].max_length == length(Order, "channel")
    assert orders["sku"].max_length == 64
    assert (orders["quantity"].minimum, orders["quantity"].maximum) == (1, 1_000_000)
    assert fields["level"].choices == ("A", "B", "C")
    assert fields["gender"].choices == ("male", "female")


@pytest.mark.parametrize("entity", ENTITIES)
def test_no_synonym_points_to_two_fields_of_one_entity(entity: str) -> None:
    owner: dict[str, str] = {}
    for f in import_fields(entity):  # type: ignore[arg-type]
        for synonym in {header_key(s) for s in (f.key, *f.synonyms)}:
            assert owner.setdefault(synonym, f.key) == f.key, synonym


def test_chinese_customer_headers() -> None:
    headers = [
        "客户名称",
        "客户类型",
        "手机号",
        "电子邮件",
        "所属行业",
        "客户级别",
        "客户来源",
        "省份",
        "城市",
        "详细地址",
        "性别",
        "出生日期",
        "负责人",
        "标签",
        "备注",
    ]

    mapping = suggest_mapping(headers, "customers")

    assert list(mapping.values()) == [
        "name",
        "kind",
        "phone",
        "email",
        "industry",
        "level",
        "source",
        "province",
        "city",
        "address",
        "gender",
        "birth_date",
        "owner",
        "tags",
        "notes",
    ]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("公司名称", "name"),
        ("名称", "name"),
        ("Company", "name"),
        ("Customer name", "name"),
        ("手机", "phone"),
        ("电话", "phone"),
        ("联系电话", "phone"),
        ("Phone", "phone"),
        ("Mobile", "phone"),
        ("邮箱", "email"),
        ("E-mail", "email"),
        ("行业", "industry"),
        ("Industry", "industry"),
        ("省", "province"),
        ("Province", "province"),
        ("市", "city"),
        ("City", "city"),
    ],
)
def test_customer_synonyms(header: str, field: str) -> None:
    assert suggest_mapping([header], "customers") == {0: field}


def test_english_customer_headers() -> None:
    headers = ["Company Name", "Mobile", "Email Address", "Industry", "Lead Source", "Owner"]

    assert list(suggest_mapping(headers, "customers").values()) == [
        "name",
        "phone",
        "email",
        "industry",
        "source",
        "owner",
    ]


def test_headers_are_compared_normalised() -> None:
    headers = ["  ＣＵＳＴＯＭＥＲ＿ＮＡＭＥ ", "E_MAIL", "phone number", "客户名称*"]

    mapping = suggest_mapping(headers, "customers")

    assert mapping[0] == "name"
    assert mapping[1] == "email"
    assert mapping[2] == "phone"
    assert 3 not in mapping  # "name" is taken by the first column


def test_bracketed_hints_and_longer_headers_still_match() -> None:
    headers = ["订单金额（元）", "客户名称", "下单日期(yyyy-mm-dd)", "客户手机号码"]

    assert named(headers, suggest_mapping(headers, "orders")) == {
        "订单金额（元）": "amount",
        "客户名称": "customer_name",
        "下单日期(yyyy-mm-dd)": "ordered_at",
        "客户手机号码": "customer_phone",
    }


def test_order_headers_in_chinese_and_english() -> None:
    chinese = ["订单号", "客户", "下单时间", "金额", "成本", "渠道", "商品名称", "SKU", "数量"]
    chinese += ["单价", "成本单价"]
    english = ["Order No", "Customer", "Order date", "Amount", "Cost", "Channel", "Product"]
    english += ["SKU", "Qty", "Unit price", "Unit cost"]
    expected = [
        "external_id",
        "customer_name",
        "ordered_at",
        "amount",
        "cost",
        "channel",
        "product",
        "sku",
        "quantity",
        "unit_price",
        "unit_cost",
    ]

    assert list(suggest_mapping(chinese, "orders").values()) == expected
    assert list(suggest_mapping(english, "orders").values()) == expected


def test_order_date_synonyms() -> None:
    for header in ("下单时间", "订单日期", "Order date"):
        assert suggest_mapping([header], "orders") == {0: "ordered_at"}
    for header in ("金额", "订单金额", "Amount"):
        assert suggest_mapping([header], "orders") == {0: "amount"}


def test_contact_headers_tell_the_customer_from_the_contact() -> None:
    headers = ["客户名称", "联系人", "职位", "手机", "邮箱", "微信", "主要联系人"]

    assert list(suggest_mapping(headers, "contacts").values()) == [
        "customer_name",
        "name",
        "title",
        "phone",
        "email",
        "wechat",
        "is_primary",
    ]


def test_never_two_columns_for_one_field() -> None:
    headers = ["客户名称", "公司名称", "手机", "电话", "联系电话"]

    mapping = suggest_mapping(headers, "customers")

    assert len(set(mapping.values())) == len(mapping)
    # The left-most of equals wins; a second phone column goes to the second phone field.
    assert named(headers, mapping) == {"客户名称": "name", "手机": "phone", "电话": "phone_2"}


def test_exact_match_beats_a_partial_one_further_left() -> None:
    headers = ["客户名称备注", "客户名称"]

    assert suggest_mapping(headers, "customers") == {0: "notes", 1: "name"}


def test_unknown_headers_are_left_out() -> None:
    assert suggest_mapping(["序号", "Foo", ""], "customers") == {}


def test_custom_fields_by_label_or_key() -> None:
    custom = [CustomFieldSpec("budget", "预算"), CustomFieldSpec("school", "学校")]

    mapping = suggest_mapping(["客户名称", "预算", "cf.school"], "customers", custom)

    assert mapping == {0: "name", 1: "cf.budget", 2: "cf.school"}


def test_check_mapping_accepts_a_complete_mapping() -> None:
    headers = ["订单号", "客户", "下单时间", "金额"]

    check_mapping(headers, "orders", suggest_mapping(headers, "orders"))


@pytest.mark.parametrize(
    ("mapping", "code"),
    [
        ({0: "name", 5: "phone"}, "bad_mapping"),
        ({0: "name", 1: "nonsense"}, "bad_mapping"),
        ({0: "name", 1: "name"}, "bad_mapping"),
        ({1: "phone"}, "missing_header"),
    ],
)
def test_check_mapping_refuses(mapping: dict[int, str], code: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        check_mapping(["A", "B"], "customers", mapping)

    assert caught.value.code == code


def test_orders_need_a_customer_a_date_and_an_amount_or_product() -> None:
    with pytest.raises(ImportFileError) as caught:
        check_mapping(["客户", "数量"], "orders", {0: "customer_name", 1: "quantity"})

    message = caught.value.message
    assert caught.value.code == "missing_header"
    assert "下单时间" in message
    assert "订单金额" in message and "SKU" in message
    assert "客户名称" not in message


def test_required_custom_field_column_is_required() -> None:
    custom = [CustomFieldSpec("budget", "预算", "number", required=True)]

    with pytest.raises(ImportFileError) as caught:
        check_mapping(["客户名称"], "customers", {0: "name"}, custom)

    assert "预算" in caught.value.message
