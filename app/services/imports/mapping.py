"""What can be imported per entity, and a suggested column → field mapping from the headers.

A mapping is ``{column index: field key}``; a field is mapped from one column at most. Field
keys are what users and the API see (``phone``, ``amount``, ``cf.<key>``); each field names the
key its cleaned value is stored under (``phones``, ``amount_cents``, ``custom_fields``), which
are the model columns (``app.models.customer``, ``app.models.contract``). Length and range limits
are read from the input schemas and models, so they cannot drift apart.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from annotated_types import Ge, Le, MaxLen
from pydantic import BaseModel

from app.models.customer import Tag
from app.models.opportunity import Product
from app.models.org import User
from app.schemas.customer import ContactCreate, CustomerCreate, Gender, Kind, Level
from app.schemas.opportunity import ProductCreate
from app.schemas.order import OrderIn, OrderLineIn
from app.services.imports._text import header_bare_key, header_key
from app.services.imports.errors import ImportFileError

Entity = Literal["customers", "contacts", "orders"]
ENTITIES: tuple[Entity, ...] = typing.get_args(Entity)
FieldKind = Literal[
    "text",  # one line of text
    "multiline",  # text that may hold line breaks (notes)
    "phone",  # one or more phone numbers, merged into a list
    "single_phone",  # exactly one phone number (to find a customer by)
    "email",
    "date",
    "datetime",
    "money",  # integer cents
    "int",
    "id",  # a record id (positive integer)
    "float",
    "enum",
    "bool",
    "list",  # names separated by , ; 、 | /
    "custom",  # a custom field, typed by its definition
]
CUSTOM_PREFIX = "cf."


class CustomFieldLike(Protocol):
    """What a custom field definition (``app.models.customer.CustomFieldDefinition``) offers."""

    @property
    def key(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def options(self) -> list[str]: ...
    @property
    def required(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class CustomFieldSpec:
    """A custom field definition without a database row (tests, previews)."""

    key: str
    label: str
    type: str = "text"
    options: list[str] = field(default_factory=list)
    required: bool = False


@dataclass(frozen=True, slots=True)
class ImportField:
    key: str
    label: str
    label_en: str
    kind: FieldKind
    # The key of the cleaned value (a model column, or the name a later step resolves).
    target: str
    synonyms: tuple[str, ...] = ()
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    # Allowed values of an enum field (from the schema's Literal).
    choices: tuple[str, ...] = ()
    # Where a second column with the same meaning goes (a second phone column).
    overflow: str | None = None
    custom: CustomFieldLike | None = None


def _meta(model: type[BaseModel], name: str, kind: type[Any]) -> Any:
    for item in model.model_fields[name].metadata:
        if isinstance(item, kind):
            return item
    raise LookupError(f"{model.__name__}.{name} has no {kind.__name__}")


def _max_len(model: type[BaseModel], name: str) -> int:
    return int(_meta(model, name, MaxLen).max_length)


def _column_len(model: type[Any], name: str) -> int:
    return int(model.__table__.c[name].type.length)


_PHONE_SYNONYMS = (
    "手机",
    "手机号",
    "手机号码",
    "电话",
    "电话号码",
    "联系电话",
    "移动电话",
    "phone",
    "mobile",
    "mobile phone",
    "mobile number",
    "cell",
    "cellphone",
    "telephone",
    "tel",
    "phone number",
)
_PHONE_2_SYNONYMS = (
    "座机",
    "固话",
    "固定电话",
    "办公电话",
    "电话2",
    "手机2",
    "备用电话",
    "其他电话",
    "landline",
    "office phone",
    "work phone",
    "phone 2",
    "other phone",
    "secondary phone",
)
_EMAIL_SYNONYMS = (
    "邮箱",
    "电子邮件",
    "电子邮箱",
    "邮件",
    "邮箱地址",
    "email",
    "mail",
    "email address",
)
_BIRTH_SYNONYMS = (
    "生日",
    "出生日期",
    "出生年月日",
    "birthday",
    "birth date",
    "date of birth",
    "dob",
)
_NOTES_SYNONYMS = (
    "备注",
    "备注信息",
    "说明",
    "描述",
    "notes",
    "note",
    "remark",
    "remarks",
    "comment",
    "comments",
    "description",
)
_CUSTOMER_ID_SYNONYMS = ("客户id", "客户编号", "customer id", "account id")


def _customer_fields() -> list[ImportField]:
    c = CustomerCreate
    return [
        ImportField(
            "name",
            "客户名称",
            "Customer name",
            "text",
            "name",
            (
                "客户名称",
                "客户名",
                "客户",
                "客户姓名",
                "公司名称",
                "公司",
                "公司名",
                "企业名称",
                "企业",
                "单位名称",
                "单位",
                "名称",
                "姓名",
                "name",
                "customer",
                "customer name",
                "company",
                "company name",
                "account",
                "account name",
                "organization",
                "organisation",
            ),
            max_length=_max_len(c, "name"),
        ),
        ImportField(
            "kind",
            "客户类型",
            "Kind",
            "enum",
            "kind",
            ("客户类型", "类型", "客户类别", "类别", "客户性质", "性质", "kind", "type"),
            choices=typing.get_args(Kind),
        ),
        ImportField(
            "phone",
            "手机",
            "Phone",
            "phone",
            "phones",
            (*_PHONE_SYNONYMS, "客户电话", "客户手机"),
            overflow="phone_2",
        ),
        ImportField("phone_2", "其他电话", "Other phone", "phone", "phones", _PHONE_2_SYNONYMS),
        ImportField(
            "email",
            "邮箱",
            "E-mail",
            "email",
            "email",
            _EMAIL_SYNONYMS,
            max_length=_max_len(c, "email"),
        ),
        ImportField(
            "industry",
            "行业",
            "Industry",
            "text",
            "industry",
            ("行业", "所属行业", "行业类型", "行业分类", "industry", "sector"),
            max_length=_max_len(c, "industry"),
        ),
        ImportField(
            "level",
            "客户级别",
            "Level",
            "enum",
            "level",
            ("客户级别", "级别", "客户等级", "等级", "客户分级", "level", "grade", "tier"),
            choices=typing.get_args(Level),
        ),
        ImportField(
            "source",
            "客户来源",
            "Source",
            "text",
            "source",
            (
                "客户来源",
                "来源",
                "来源渠道",
                "获客渠道",
                "线索来源",
                "渠道",
                "source",
                "lead source",
                "channel",
            ),
            max_length=_max_len(c, "source"),
        ),
        ImportField(
            "province",
            "省份",
            "Province",
            "text",
            "province",
            ("省份", "省", "所在省份", "省直辖市", "province", "state"),
            max_length=_max_len(c, "province"),
        ),
        ImportField(
            "city",
            "城市",
            "City",
            "text",
            "city",
            ("城市", "市", "所在城市", "地市", "city"),
            max_length=_max_len(c, "city"),
        ),
        ImportField(
            "address",
            "地址",
            "Address",
            "text",
            "address",
            (
                "地址",
                "详细地址",
                "联系地址",
                "公司地址",
                "通讯地址",
                "address",
                "street",
                "street address",
            ),
            max_length=_max_len(c, "address"),
        ),
        ImportField(
            "lat",
            "纬度",
            "Latitude",
            "float",
            "lat",
            ("纬度", "latitude", "lat"),
            minimum=float(_meta(c, "lat", Ge).ge),
            maximum=float(_meta(c, "lat", Le).le),
        ),
        ImportField(
            "lng",
            "经度",
            "Longitude",
            "float",
            "lng",
            ("经度", "longitude", "lng", "lon"),
            minimum=float(_meta(c, "lng", Ge).ge),
            maximum=float(_meta(c, "lng", Le).le),
        ),
        ImportField(
            "gender",
            "性别",
            "Gender",
            "enum",
            "gender",
            ("性别", "gender", "sex"),
            choices=typing.get_args(Gender),
        ),
        ImportField("birth_date", "生日", "Birth date", "date", "birth_date", _BIRTH_SYNONYMS),
        ImportField(
            "notes",
            "备注",
            "Notes",
            "multiline",
            "notes",
            (*_NOTES_SYNONYMS, "客户描述"),
            max_length=_max_len(c, "notes"),
        ),
        ImportField(
            "owner",
            "负责人",
            "Owner (username)",
            "text",
            "owner_username",
            (
                "负责人",
                "负责人账号",
                "负责人用户名",
                "客户负责人",
                "所属人",
                "归属人",
                "所有者",
                "销售",
                "销售代表",
                "业务员",
                "跟进人",
                "owner",
                "owner username",
                "account owner",
                "sales rep",
                "rep",
            ),
            max_length=_column_len(User, "username"),
        ),
        ImportField(
            "tags",
            "标签",
            "Tags",
            "list",
            "tag_names",
            ("标签", "客户标签", "tags", "tag", "labels"),
            max_length=_column_len(Tag, "name"),
            maximum=float(_meta(c, "tag_ids", MaxLen).max_length),
        ),
    ]


def _contact_fields() -> list[ImportField]:
    c = ContactCreate
    return [
        ImportField(
            "customer_id", "客户ID", "Customer id", "id", "customer_id", _CUSTOMER_ID_SYNONYMS
        ),
        ImportField(
            "customer_name",
            "客户名称",
            "Customer name",
            "text",
            "customer_name",
            (
                "客户名称",
                "客户",
                "客户名",
                "所属客户",
                "公司名称",
                "公司",
                "所属公司",
                "企业名称",
                "单位名称",
                "单位",
                "customer",
                "customer name",
                "company",
                "company name",
                "account",
                "account name",
            ),
            max_length=_max_len(CustomerCreate, "name"),
        ),
        ImportField(
            "customer_phone",
            "客户电话",
            "Customer phone",
            "single_phone",
            "customer_phone",
            ("客户电话", "客户手机", "公司电话", "customer phone", "company phone"),
        ),
        ImportField(
            "name",
            "联系人姓名",
            "Contact name",
            "text",
            "name",
            (
                "联系人姓名",
                "联系人",
                "联系人名称",
                "姓名",
                "名字",
                "名称",
                "name",
                "contact",
                "contact name",
                "full name",
            ),
            max_length=_max_len(c, "name"),
        ),
        ImportField(
            "title",
            "职位",
            "Title",
            "text",
            "title",
            ("职位", "职务", "岗位", "头衔", "title", "job title", "position", "role"),
            max_length=_max_len(c, "title"),
        ),
        ImportField(
            "phone",
            "手机",
            "Phone",
            "phone",
            "phones",
            (*_PHONE_SYNONYMS, "联系人电话", "联系人手机"),
            overflow="phone_2",
        ),
        ImportField("phone_2", "其他电话", "Other phone", "phone", "phones", _PHONE_2_SYNONYMS),
        ImportField(
            "email",
            "邮箱",
            "E-mail",
            "email",
            "email",
            _EMAIL_SYNONYMS,
            max_length=_max_len(c, "email"),
        ),
        ImportField(
            "wechat",
            "微信",
            "WeChat",
            "text",
            "wechat",
            ("微信", "微信号", "wechat", "weixin", "wechat id"),
            max_length=_max_len(c, "wechat"),
        ),
        ImportField(
            "is_primary",
            "主要联系人",
            "Primary contact",
            "bool",
            "is_primary",
            (
                "主要联系人",
                "主联系人",
                "首要联系人",
                "是否主联系人",
                "primary",
                "is primary",
                "primary contact",
                "main contact",
            ),
        ),
        ImportField("birth_date", "生日", "Birth date", "date", "birth_date", _BIRTH_SYNONYMS),
        ImportField(
            "notes",
            "备注",
            "Notes",
            "multiline",
            "notes",
            _NOTES_SYNONYMS,
            max_length=_max_len(c, "notes"),
        ),
    ]


def _order_fields() -> list[ImportField]:
    quantity_min = float(_meta(OrderLineIn, "quantity", Ge).ge)
    quantity_max = float(_meta(OrderLineIn, "quantity", Le).le)
    return [
        ImportField(
            "external_id",
            "订单号",
            "Order number",
            "text",
            "external_id",
            (
                "订单号",
                "订单编号",
                "订单id",
                "外部订单号",
                "外部单号",
                "交易单号",
                "单号",
                "order id",
                "order no",
                "order number",
                "external id",
            ),
            max_length=_max_len(OrderIn, "external_id"),
        ),
        ImportField(
            "customer_id", "客户ID", "Customer id", "id", "customer_id", _CUSTOMER_ID_SYNONYMS
        ),
        ImportField(
            "customer_name",
            "客户名称",
            "Customer name",
            "text",
            "customer_name",
            (
                "客户名称",
                "客户",
                "客户名",
                "客户姓名",
                "公司名称",
                "公司",
                "买家",
                "购买方",
                "姓名",
                "customer",
                "customer name",
                "company",
                "company name",
                "buyer",
                "account",
            ),
            max_length=_max_len(CustomerCreate, "name"),
        ),
        ImportField(
            "customer_phone",
            "客户电话",
            "Customer phone",
            "single_phone",
            "customer_phone",
            (*_PHONE_SYNONYMS, "客户电话", "客户手机", "买家电话", "收货人电话", "customer phone"),
        ),
        ImportField(
            "ordered_at",
            "下单时间",
            "Order date",
            "datetime",
            "ordered_at",
            (
                "下单时间",
                "下单日期",
                "订单日期",
                "订单时间",
                "成交日期",
                "成交时间",
                "交易时间",
                "购买日期",
                "购买时间",
                "支付时间",
                "日期",
                "时间",
                "order date",
                "ordered at",
                "order time",
                "purchase date",
                "date",
            ),
        ),
        ImportField(
            "amount",
            "订单金额",
            "Amount",
            "money",
            "amount_cents",
            (
                "订单金额",
                "金额",
                "总金额",
                "实付金额",
                "实收金额",
                "付款金额",
                "成交金额",
                "销售额",
                "合计",
                "总价",
                "amount",
                "order amount",
                "total",
                "total amount",
                "revenue",
                "sales",
            ),
        ),
        ImportField(
            "cost",
            "订单成本",
            "Cost",
            "money",
            "cost_cents",
            ("订单成本", "成本", "成本金额", "总成本", "cost", "total cost"),
        ),
        ImportField(
            "channel",
            "渠道",
            "Channel",
            "text",
            "channel",
            (
                "渠道",
                "销售渠道",
                "订单来源",
                "来源",
                "平台",
                "channel",
                "sales channel",
                "platform",
            ),
            max_length=_max_len(OrderIn, "channel"),
        ),
        ImportField(
            "product",
            "商品名称",
            "Product",
            "text",
            "product_name",
            (
                "商品名称",
                "商品",
                "产品名称",
                "产品",
                "品名",
                "货品",
                "product",
                "product name",
                "item",
                "item name",
            ),
            max_length=min(_max_len(ProductCreate, "name"), _column_len(Product, "name")),
        ),
        ImportField(
            "sku",
            "SKU",
            "SKU",
            "text",
            "sku",
            (
                "sku",
                "货号",
                "商品编码",
                "商品编号",
                "产品编码",
                "产品编号",
                "物料编码",
                "product code",
                "item code",
            ),
            max_length=min(_max_len(ProductCreate, "sku"), _column_len(Product, "sku")),
        ),
        ImportField(
            "quantity",
            "数量",
            "Quantity",
            "int",
            "quantity",
            ("数量", "件数", "购买数量", "销售数量", "qty", "quantity"),
            minimum=quantity_min,
            maximum=quantity_max,
        ),
        ImportField(
            "unit_price",
            "单价",
            "Unit price",
            "money",
            "unit_price_cents",
            ("单价", "售价", "销售单价", "商品单价", "unit price", "price"),
        ),
        ImportField(
            "unit_cost",
            "成本单价",
            "Unit cost",
            "money",
            "unit_cost_cents",
            ("成本单价", "单位成本", "成本价", "进价", "采购价", "unit cost", "cost price"),
        ),
    ]


_FIELDS: dict[Entity, tuple[ImportField, ...]] = {
    "customers": tuple(_customer_fields()),
    "contacts": tuple(_contact_fields()),
    "orders": tuple(_order_fields()),
}
# Column groups a file must have, per entity: one field of each group must be mapped.
REQUIRED_COLUMNS: dict[Entity, tuple[tuple[str, ...], ...]] = {
    "customers": (("name",),),
    "contacts": (("name",), ("customer_id", "customer_name", "customer_phone")),
    "orders": (
        ("customer_id", "customer_name", "customer_phone"),
        ("ordered_at",),
        ("amount", "product", "sku"),
    ),
}
# Entities that carry custom fields (the definitions' ``entity`` is "customer").
_CUSTOM_ENTITIES: frozenset[Entity] = frozenset({"customers"})


def import_fields(
    entity: Entity, custom_fields: Sequence[CustomFieldLike] = ()
) -> list[ImportField]:
    """The importable fields of an entity, built-in first, then ``cf.<key>`` custom fields."""
    if entity not in _FIELDS:
        raise ValueError(f"unknown import entity {entity!r}")
    fields = list(_FIELDS[entity])
    if entity in _CUSTOM_ENTITIES:
        fields += [
            ImportField(
                CUSTOM_PREFIX + d.key,
                d.label,
                d.label,
                "custom",
                "custom_fields",
                (d.label, d.key, CUSTOM_PREFIX + d.key),
                custom=d,
            )
            for d in custom_fields
        ]
    return fields


def required_groups(
    entity: Entity, custom_fields: Sequence[CustomFieldLike] = ()
) -> list[tuple[str, ...]]:
    groups = list(REQUIRED_COLUMNS[entity])
    if entity in _CUSTOM_ENTITIES:
        groups += [(CUSTOM_PREFIX + d.key,) for d in custom_fields if d.required]
    return groups


# Containment matches need this many characters of a synonym (CJK carries more per character).
def _long_enough(synonym: str) -> bool:
    return len(synonym) >= (4 if synonym.isascii() else 2)


def _match_score(key: str, bare: str, synonym: str) -> int:
    if not synonym or not bare:
        return 0
    if key == synonym:
        return 100
    if bare == synonym:
        return 90
    if _long_enough(synonym) and synonym in bare:
        # The head of a Chinese or English noun phrase is at its end: 客户来源 is a source.
        if bare.endswith(synonym):
            return 60 + len(synonym)
        if bare.startswith(synonym):
            return 50 + len(synonym)
        return 40 + len(synonym)
    return 0


def suggest_mapping(
    headers: Sequence[str],
    entity: Entity,
    custom_fields: Sequence[CustomFieldLike] = (),
) -> dict[int, str]:
    """A proposed ``{column index: field key}`` from headers in Chinese or English.

    Headers are compared trimmed, width-folded, case-folded and without spaces, underscores or
    bracketed hints (``金额（元）``). Exact synonyms beat partial ones, and of equals the left-most
    column wins; no two columns get one field. Unrecognised columns are left out.
    """
    fields = import_fields(entity, custom_fields)
    synonyms = {
        f.key: [header_key(s) for s in (f.key, f.label, f.label_en, *f.synonyms)] for f in fields
    }
    by_key = {f.key: f for f in fields}
    order = {f.key: i for i, f in enumerate(fields)}
    candidates: list[tuple[int, int, int, str]] = []
    for column, header in enumerate(headers):
        key, bare = header_key(header), header_bare_key(header)
        for f in fields:
            score = max(_match_score(key, bare, s) for s in synonyms[f.key])
            if score == 0:
                continue
            candidates.append((-score, column, order[f.key], f.key))
            overflow = by_key[f.key].overflow
            if overflow is not None:
                candidates.append((-(score - 5), column, order[overflow], overflow))
    candidates.sort()
    mapping: dict[int, str] = {}
    taken: set[str] = set()
    for _, column, _, key in candidates:
        if column in mapping or key in taken:
            continue
        mapping[column] = key
        taken.add(key)
    return dict(sorted(mapping.items()))


def check_mapping(
    headers: Sequence[str],
    entity: Entity,
    mapping: Mapping[int, str],
    custom_fields: Sequence[CustomFieldLike] = (),
) -> None:
    """Refuse a mapping that names unknown columns or fields, maps a field twice, or lacks a
    required column (``missing_header``)."""
    fields = {f.key: f for f in import_fields(entity, custom_fields)}
    seen: dict[str, int] = {}
    for column, key in mapping.items():
        if not 0 <= column < len(headers):
            raise ImportFileError("bad_mapping", f"there is no column {column + 1} in the file")
        if key not in fields:
            raise ImportFileError("bad_mapping", f"{key!r} is not an importable {entity} field")
        if key in seen:
            raise ImportFileError(
                "bad_mapping",
                f"columns “{headers[seen[key]]}” and “{headers[column]}” are both mapped to "
                f"{fields[key].label_en}; map one of them only",
            )
        seen[key] = column
    missing = [
        group for group in required_groups(entity, custom_fields) if not set(group) & seen.keys()
    ]
    if missing:
        names = "; ".join(
            " or ".join(f"{fields[k].label} ({fields[k].label_en})" for k in group)
            for group in missing
        )
        raise ImportFileError("missing_header", f"the file needs a column for: {names}")
