"""Customers, their contacts and timeline (SPEC B1–B5, A5)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query, Request, Response, status

from app.access import Principal
from app.deps import CurrentPrincipal, IfMatch, SessionDep, direct_read, etag_for
from app.errors import ValidationFailed, field_error
from app.routers.common import (
    ETAG_HEADER,
    ApiRouter,
    QueryDateTime,
    json_response,
    problems,
    set_etag,
)
from app.schemas.common import Page
from app.schemas.customer import (
    ContactCreate,
    ContactOut,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    DuplicateCheckOut,
    FacetsOut,
    Gender,
    Kind,
    Level,
    TimelineEventOut,
)
from app.services import contacts as contact_service
from app.services import customers as service
from app.services.customers import SORT_CHOICES, CustomerQuery

router = ApiRouter(prefix="/customers", tags=["customers"])


async def customer_out(
    session: SessionDep, principal: Principal, customer_id: int, response: Response
) -> CustomerOut:
    """The customer as the caller may see it, with its ETag (for actions that answer with it)."""
    view = await service.get_customer(session, principal, customer_id)
    set_etag(response, view.customer.version)
    return CustomerOut.model_validate(view.as_dict())


SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "name",
    "-name",
    "last_follow_up_at",
    "-last_follow_up_at",
    "next_follow_up_at",
    "-next_follow_up_at",
    "distance",
]
assert set(SortKey.__args__) == {*SORT_CHOICES, "distance"}  # type: ignore[attr-defined]

CUSTOM_FILTER_DOC = (
    " Custom fields filter as `cf.<key>=<value>` (equality; for multi-select: contains), and for "
    "number and date fields also `cf.<key>.min=` / `cf.<key>.max=` (inclusive)."
)


def _parse_near(near: str | None) -> tuple[float, float] | None:
    if near is None:
        return None
    try:
        lat_s, lng_s = near.split(",")
        lat, lng = float(lat_s), float(lng_s)
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise ValueError
    except ValueError:
        raise ValidationFailed(
            errors=[field_error("near", "expected lat,lng (e.g. 30.27,120.15)", where="query")]
        ) from None
    return lat, lng


async def customer_query(
    request: Request,
    q: Annotated[
        str | None, Query(max_length=100, description="Search name, phones and contact names.")
    ] = None,
    kind: Kind | None = None,
    level: Annotated[list[Level], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
    industry: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    source: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    province: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    city: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    deal_status: Literal["none", "signed"] | None = None,
    gender: Gender | None = None,
    owner_id: int | None = None,
    department_id: int | None = None,
    tag_id: Annotated[
        list[int], Query(max_length=20, description="Every tag given must be on the customer.")
    ] = [],  # noqa: B006
    created_from: QueryDateTime | None = None,
    created_to: QueryDateTime | None = None,
    last_follow_up_from: QueryDateTime | None = None,
    last_follow_up_to: QueryDateTime | None = None,
    next_follow_up_from: QueryDateTime | None = None,
    next_follow_up_to: QueryDateTime | None = None,
    near: Annotated[
        str | None,
        Query(description="`lat,lng`: only customers within `radius_km`, nearest first."),
    ] = None,
    radius_km: Annotated[float, Query(gt=0, le=200)] = 5.0,
    sort: SortKey | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CustomerQuery:
    for name, value in (
        ("created_from", created_from),
        ("created_to", created_to),
        ("last_follow_up_from", last_follow_up_from),
        ("last_follow_up_to", last_follow_up_to),
        ("next_follow_up_from", next_follow_up_from),
        ("next_follow_up_to", next_follow_up_to),
    ):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(errors=[field_error(name, "give a time zone", where="query")])
    near_point = _parse_near(near)
    if sort == "distance" and near_point is None:
        raise ValidationFailed(errors=[field_error("sort", "distance needs near", where="query")])
    custom = {k[3:]: v for k, v in request.query_params.items() if k.startswith("cf.")}
    return CustomerQuery(
        q=q,
        kind=kind,
        level=list(level),
        industry=industry,
        source=source,
        province=province,
        city=city,
        deal_status=deal_status,
        gender=gender,
        owner_id=owner_id,
        department_id=department_id,
        tag_id=tag_id,
        created_from=created_from,
        created_to=created_to,
        last_follow_up_from=last_follow_up_from,
        last_follow_up_to=last_follow_up_to,
        next_follow_up_from=next_follow_up_from,
        next_follow_up_to=next_follow_up_to,
        near=near_point,
        radius_km=radius_km,
        custom=custom,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "",
    response_model=Page[CustomerOut],
    responses=problems(),
    description="Customers in your data scope, filtered, sorted and paged by cursor."
    + CUSTOM_FILTER_DOC,
)
async def list_customers(
    principal: CurrentPrincipal,
    session: SessionDep,
    query: Annotated[CustomerQuery, Depends(customer_query)],
    response: Response,
) -> Response:
    """List and search customers."""
    views, next_cursor = await service.list_customers(session, principal, query)
    page = Page[CustomerOut](
        items=[CustomerOut.model_validate(v.as_dict()) for v in views], next_cursor=next_cursor
    )
    # Validated here, not again by the response model; with the headers the guard set (rate
    # limit) on the response FastAPI would have answered with.
    return json_response(page, response.headers)


@router.get("/facets", response_model=FacetsOut, responses=problems())
async def customer_facets(principal: CurrentPrincipal, session: SessionDep) -> FacetsOut:
    """Distinct industries, sources, regions and levels among your customers (filter pickers)."""
    return FacetsOut.model_validate(await service.facets(session, principal))


@router.get("/duplicates", response_model=DuplicateCheckOut, responses=problems())
async def check_customer_duplicates(
    principal: CurrentPrincipal,
    session: SessionDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    phone: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006
    email: Annotated[str | None, Query(max_length=254)] = None,
    exclude_id: Annotated[
        int | None, Query(description="Ignore this customer (the one being edited).")
    ] = None,
) -> DuplicateCheckOut:
    """Find existing customers that look like the one being entered."""
    matches = await service.find_duplicates(
        session, principal, name=name, phones=phone, email=email, exclude_id=exclude_id
    )
    return DuplicateCheckOut.model_validate({"matches": matches})


@router.post(
    "",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403, 409), 201: {"headers": ETAG_HEADER}},
)
async def create_customer(
    body: CustomerCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> CustomerOut:
    """Create a customer (409 with the matches when it looks like a duplicate)."""
    view = await service.create_customer(session, principal, body)
    set_etag(response, view.customer.version)
    response.headers["Location"] = f"/api/v1/customers/{view.customer.id}"
    return CustomerOut.model_validate(view.as_dict())


@router.direct_get(
    "/{customer_id:int}",
    response_model=CustomerOut,
    responses={**problems(404), 200: {"headers": ETAG_HEADER}},
)
async def get_customer(request: Request, customer_id: int) -> Response:
    """Read one customer."""
    async with direct_read(request) as read:
        view = await service.read_customer(read.reads, read.principal, customer_id)
    out = CustomerOut.model_validate(view.as_dict())
    return json_response(out, {**read.headers, "ETag": etag_for(view.customer.version)})


@router.patch(
    "/{customer_id:int}",
    response_model=CustomerOut,
    responses={**problems(403, 404, 412, 428), 200: {"headers": ETAG_HEADER}},
)
async def update_customer(
    customer_id: int,
    body: CustomerUpdate,
    version: IfMatch,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> CustomerOut:
    """Change some fields of a customer (send If-Match)."""
    view = await service.update_customer(session, principal, customer_id, version, body)
    set_etag(response, view.customer.version)
    return CustomerOut.model_validate(view.as_dict())


@router.delete(
    "/{customer_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 412, 428),
)
async def delete_customer(
    customer_id: int, version: IfMatch, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete a customer (soft: it can be restored from the recycle bin)."""
    await service.delete_customer(session, principal, customer_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{customer_id}/timeline", response_model=Page[TimelineEventOut], responses=problems(404)
)
async def customer_timeline(
    customer_id: int,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[TimelineEventOut]:
    """Every change to the customer and its contacts, newest first."""
    items, next_cursor = await service.timeline(
        session, principal, customer_id, cursor=cursor, limit=limit
    )
    return Page[TimelineEventOut](
        items=[TimelineEventOut.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.get("/{customer_id}/contacts", response_model=list[ContactOut], responses=problems(404))
async def list_customer_contacts(
    customer_id: int, principal: CurrentPrincipal, session: SessionDep
) -> list[ContactOut]:
    """The customer's contacts, primary first."""
    rows = await contact_service.list_contacts(session, principal, customer_id)
    return [ContactOut.model_validate(c) for c in rows]


@router.post(
    "/{customer_id}/contacts",
    response_model=ContactOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problems(403, 404), 201: {"headers": ETAG_HEADER}},
)
async def create_contact(
    customer_id: int,
    body: ContactCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> ContactOut:
    """Add a contact to a customer."""
    contact = await contact_service.create_contact(session, principal, customer_id, body)
    set_etag(response, contact.version)
    response.headers["Location"] = f"/api/v1/contacts/{contact.id}"
    return ContactOut.model_validate(contact)
