"""Exports (SPEC I2): the records of a list, with the list's filters, as CSV or XLSX."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal
from app.deps import CurrentPrincipal, SessionDep, SessionMakerDep, SettingsDep
from app.errors import ValidationFailed, field_error
from app.models.base import utcnow
from app.routers.common import ApiRouter, QueryDateTime, problems
from app.routers.customers import customer_query
from app.schemas.contract import ContractOut, ContractStatus
from app.schemas.customer import CustomerOut
from app.schemas.opportunity import OpportunityOut, OpportunityStatus
from app.schemas.order import OrderOut
from app.services import config, contracts, customers, opportunities, orders, pools, privacy
from app.services.customers import CustomerQuery
from app.services.exports import MEDIA_TYPES, Column, Export, Format, Lang, csv_chunks, xlsx_chunks
from app.services.imports import Entity, import_fields

# One router per resource: an API key needs that resource's read scope (app.main, KEY_SCOPES).
customer_exports = ApiRouter(tags=["exports"])
opportunity_exports = ApiRouter(tags=["exports"])
contract_exports = ApiRouter(tags=["exports"])
order_exports = ApiRouter(tags=["exports"])

FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file: CSV (UTF-8 with BOM) streamed as it is read, or XLSX.",
        "content": {
            MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
            MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **problems(403),
}
EXPORT_DOC = (
    " Every record the list would show you, all pages: the same filters and data scope, personal "
    "fields masked or left empty as your roles' field levels and the pools say. Headers are those "
    "the importer recognises (`lang=zh-CN` or `en`). Cells a spreadsheet would run as formulas "
    "start with `'`. Every export is logged (who, filters, rows, `reason`) in the personal-data "
    "log."
)
FormatQuery = Annotated[Format, Query(description="`csv` (streamed) or `xlsx`.")]
LangQuery = Annotated[Lang, Query(description="Language of the header row.")]
ReasonQuery = Annotated[
    str | None, Query(max_length=500, description="Why (kept in the personal-data log).")
]


def _imported(entity: Entity, labels: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The importer's column names for ``entity`` (so the file imports again), with extras."""
    return {**{f.key: (f.label, f.label_en) for f in import_fields(entity)}, **labels}


def _columns(labels: dict[str, tuple[str, str]], paths: dict[str, str]) -> list[Column]:
    return [Column(path, *labels[key]) for key, path in paths.items()]


@dataclasses.dataclass
class FileRequest:
    """What every export takes besides its list's filters: the file's format and header
    language, the reason for the log, and who asks."""

    principal: Principal
    request: Request
    maker: Any
    tz: str
    fmt: Format
    lang: Lang
    reason: str | None

    async def send(self, export: Export) -> StreamingResponse:
        """The file, streamed; logged (SPEC J4) before the first byte, its rows at the end."""
        params = self.request.query_params
        filters = {
            key: values[0] if len(values) == 1 else values
            for key in dict.fromkeys(params.keys())
            if key != "reason" and (values := params.getlist(key))
        }
        customer_id = filters.get("customer_id")
        entry_id = await privacy.log_apart(
            self.maker,
            privacy.log_entry(
                self.principal,
                f"export.{export.name}",
                customer_id=int(customer_id) if isinstance(customer_id, str) else None,
                filters=filters,
                reason=self.reason,
            ),
        )

        async def done(rows: int) -> None:
            await privacy.finish_log(self.maker, entry_id, rows)

        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        chunks = (
            csv_chunks(export, self.maker, self.lang, done)
            if self.fmt == "csv"
            else xlsx_chunks(export, self.maker, self.lang, self.tz, done)
        )
        name = f"{export.name}-{stamp}.{self.fmt}"
        return StreamingResponse(
            chunks,
            media_type=MEDIA_TYPES[self.fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


async def file_request(
    principal: CurrentPrincipal,
    request: Request,
    maker: SessionMakerDep,
    settings: SettingsDep,
    format: FormatQuery = "csv",
    lang: LangQuery = "zh-CN",
    reason: ReasonQuery = None,
) -> FileRequest:
    return FileRequest(principal, request, maker, settings.business_timezone, format, lang, reason)


FileRequestDep = Annotated[FileRequest, Depends(file_request)]


CUSTOMER_LABELS = _imported(
    "customers",
    {
        "id": ("客户ID", "Customer id"),
        "deal_status": ("成交状态", "Deal status"),
        "signed_at": ("签约时间", "Signed at"),
        "last_follow_up_at": ("最近跟进时间", "Last follow-up"),
        "next_follow_up_at": ("下次跟进时间", "Next follow-up"),
        "created_at": ("创建时间", "Created at"),
    },
)
CUSTOMER_PATHS = {
    "id": "id",
    "name": "name",
    "kind": "kind",
    "phone": "phones",
    "email": "email",
    "industry": "industry",
    "level": "level",
    "source": "source",
    "province": "province",
    "city": "city",
    "address": "address",
    "gender": "gender",
    "birth_date": "birth_date",
    "owner": "owner.display_name",
    "tags": "tags",
    "deal_status": "deal_status",
    "signed_at": "signed_at",
    "last_follow_up_at": "last_follow_up_at",
    "next_follow_up_at": "next_follow_up_at",
    "notes": "notes",
    "created_at": "created_at",
}


@customer_exports.get(
    "/exports/customers",
    response_class=StreamingResponse,
    responses=FILE_RESPONSE,
    description="Customers as a file, with the filters and sort of `GET /customers` "
    "(`limit` and `cursor` are ignored); with `pool_id`, the customers of that pool as "
    "`GET /pools/{id}/customers` lists them (404 when you are not a member)." + EXPORT_DOC,
)
async def export_customers(
    principal: CurrentPrincipal,
    out: FileRequestDep,
    session: SessionDep,
    query: Annotated[CustomerQuery, Depends(customer_query)],
    pool_id: int | None = None,
) -> StreamingResponse:
    """Export customers."""
    if pool_id is not None:
        await pools.get_pool(session, principal, pool_id)
        query.pool_id = pool_id
    definitions = await config.custom_field_map(session)
    columns = _columns(CUSTOMER_LABELS, CUSTOMER_PATHS) + [
        Column(f"custom_fields.{key}", d.label, d.label) for key, d in definitions.items()
    ]

    async def page(s: AsyncSession, cursor: str | None, limit: int) -> Any:
        views, after = await customers.list_customers(
            s, principal, dataclasses.replace(query, cursor=cursor, limit=limit)
        )
        return [CustomerOut.model_validate(v.as_dict()).model_dump() for v in views], after

    export = Export("customers", columns, page)
    return await out.send(export)


OPPORTUNITY_COLUMNS = [
    Column("id", "商机ID", "Opportunity id"),
    Column("title", "商机名称", "Title"),
    Column("customer_id", "客户ID", "Customer id"),
    Column("customer_name", "客户名称", "Customer name"),
    Column("stage.name", "阶段", "Stage"),
    Column("status", "状态", "Status"),
    Column("amount", "金额", "Amount"),
    Column("weighted_amount", "加权金额", "Weighted amount"),
    Column("expected_close_date", "预计成交日期", "Expected close date"),
    Column("forecast_category", "预测分类", "Forecast category"),
    Column("owner.display_name", "负责人", "Owner"),
    Column("closed_at", "关闭时间", "Closed at"),
    Column("created_at", "创建时间", "Created at"),
]


@opportunity_exports.get(
    "/exports/opportunities",
    response_class=StreamingResponse,
    responses=FILE_RESPONSE,
    description="Opportunities as a file, with the filters of `GET /opportunities`." + EXPORT_DOC,
)
async def export_opportunities(
    principal: CurrentPrincipal,
    out: FileRequestDep,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    status: OpportunityStatus | None = None,
    owner_id: int | None = None,
    customer_id: int | None = None,
) -> StreamingResponse:
    """Export opportunities."""

    async def page(s: AsyncSession, cursor: str | None, limit: int) -> Any:
        rows, after = await opportunities.list_opportunities(
            s,
            principal,
            pipeline_id=pipeline_id,
            stage_id=stage_id,
            status=status,
            owner_id=owner_id,
            customer_id=customer_id,
            cursor=cursor,
            limit=limit,
        )
        views = await opportunities.opportunity_views(s, rows)
        return [OpportunityOut.model_validate(v).model_dump() for v in views], after

    export = Export("opportunities", OPPORTUNITY_COLUMNS, page)
    return await out.send(export)


CONTRACT_COLUMNS = [
    Column("id", "合同ID", "Contract id"),
    Column("number", "合同编号", "Number"),
    Column("title", "合同名称", "Title"),
    Column("customer_id", "客户ID", "Customer id"),
    Column("customer_name", "客户名称", "Customer name"),
    Column("status", "状态", "Status"),
    Column("amount", "合同金额", "Amount"),
    Column("paid", "已回款", "Paid"),
    Column("start_date", "开始日期", "Start date"),
    Column("end_date", "结束日期", "End date"),
    Column("signed_at", "签约时间", "Signed at"),
    Column("owner.display_name", "负责人", "Owner"),
    Column("created_at", "创建时间", "Created at"),
]


@contract_exports.get(
    "/exports/contracts",
    response_class=StreamingResponse,
    responses=FILE_RESPONSE,
    description="Contracts as a file, with the filters of `GET /contracts`." + EXPORT_DOC,
)
async def export_contracts(
    principal: CurrentPrincipal,
    out: FileRequestDep,
    status: ContractStatus | None = None,
    customer_id: int | None = None,
    owner_id: int | None = None,
) -> StreamingResponse:
    """Export contracts."""

    async def page(s: AsyncSession, cursor: str | None, limit: int) -> Any:
        rows, after = await contracts.list_contracts(
            s,
            principal,
            status=status,
            customer_id=customer_id,
            owner_id=owner_id,
            cursor=cursor,
            limit=limit,
        )
        views = await contracts.contract_views(s, principal, rows)
        return [ContractOut.model_validate(v).model_dump() for v in views], after

    export = Export("contracts", CONTRACT_COLUMNS, page)
    return await out.send(export)


ORDER_LABELS = _imported(
    "orders", {"id": ("订单ID", "Order id"), "product_id": ("商品ID", "Product id")}
)
ORDER_PATHS = {
    "id": "id",
    "external_id": "external_id",
    "customer_id": "customer_id",
    "ordered_at": "ordered_at",
    "amount": "amount",
    "cost": "cost",
    "channel": "channel",
    "product_id": "lines.product_id",
    "quantity": "lines.quantity",
    "unit_price": "lines.unit_price",
    "unit_cost": "lines.unit_cost",
}


@order_exports.get(
    "/exports/orders",
    response_class=StreamingResponse,
    responses=FILE_RESPONSE,
    description="Orders as a file, one row per order line, with the filters of `GET /orders`."
    + EXPORT_DOC,
)
async def export_orders(
    principal: CurrentPrincipal,
    out: FileRequestDep,
    customer_id: int | None = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    ordered_from: QueryDateTime | None = None,
    ordered_to: QueryDateTime | None = None,
) -> StreamingResponse:
    """Export orders."""
    for name, value in (("ordered_from", ordered_from), ("ordered_to", ordered_to)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(errors=[field_error(name, "give a time zone", where="query")])

    async def page(s: AsyncSession, cursor: str | None, limit: int) -> Any:
        rows, after = await orders.list_orders(
            s,
            principal,
            customer_id=customer_id,
            channel=channel,
            ordered_from=ordered_from,
            ordered_to=ordered_to,
            cursor=cursor,
            limit=limit,
        )
        views = await orders.order_views(s, rows)
        return [OrderOut.model_validate(v).model_dump() for v in views], after

    export = Export("orders", _columns(ORDER_LABELS, ORDER_PATHS), page, explode="lines")
    return await out.send(export)
