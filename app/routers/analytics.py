"""Customer analytics (SPEC H1–H9): every answer is computed within the caller's data scope."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from app.access import get_readable
from app.deps import AnalyticsDep, CurrentPrincipal, SessionDep, SettingsDep
from app.errors import ValidationFailed, field_error
from app.models import Customer
from app.models.base import utcnow
from app.routers.common import ApiRouter, QueryDate, problems
from app.schemas.analytics import (
    BasketOut,
    DimensionOut,
    LeadScoresOut,
    PersonaOut,
    ProductsOut,
    PyramidOut,
    Recommendation,
    RetentionOut,
    RfmOut,
    RfmSegment,
    SegmentsOut,
    ValueMatrixOut,
)
from app.services.analytics import service
from app.services.analytics.basket import BASKET_DEFINITION, BasketQuery, basket, recommendations
from app.services.analytics.common import (
    COHORT_DOC,
    frames_for,
    parse_age_cuts,
    parse_cohort,
    parse_dimension,
)
from app.services.analytics.leads import LEAD_SCORE_DEFINITION, LeadQuery, lead_scores
from app.services.analytics.persona import PERSONA_DEFINITION, PersonaQuery, persona
from app.services.analytics.products import (
    MEASURES,
    PRODUCTS_DEFINITION,
    SEGMENTS_DEFINITION,
    ProductsQuery,
    SegmentsQuery,
    products,
    segments,
)
from app.services.analytics.retention import RETENTION_DEFINITION, RetentionQuery, retention
from app.services.analytics.value import (
    PYRAMID_DEFINITION,
    RFM_DEFINITION,
    VALUE_MATRIX_DEFINITION,
    PyramidQuery,
    RfmQuery,
    ValueMatrixQuery,
    parse_cuts,
    pyramid,
    rfm,
    value_matrix,
)

router = ApiRouter(tags=["analytics"])


async def get_analysis(
    principal: CurrentPrincipal, session: SessionDep, store: AnalyticsDep, settings: SettingsDep
) -> service.Analysis:
    return service.Analysis(session, principal, store, settings.business_timezone)


AnalysisDep = Annotated[service.Analysis, Depends(get_analysis)]

DateFrom = Annotated[
    QueryDate | None,
    Query(description="First day of the window (business time zone); default a year ago."),
]
DateTo = Annotated[QueryDate | None, Query(description="Last day of the window; default today.")]


@router.get("/analytics/dimensions", response_model=list[DimensionOut], responses=problems())
async def list_dimensions(analysis: AnalysisDep) -> list[DimensionOut]:
    """The dimensions personas and segments can group by: customer fields, `age_band`, every
    tag group (`tag_group:<id>`) and select/text custom fields (`custom:<key>`)."""
    return [DimensionOut.model_validate(d) for d in await service.dimensions(analysis.session)]


@router.get(
    "/analytics/persona",
    response_model=PersonaOut,
    responses=problems(),
    description="Persona comparison (SPEC H1).\n\n" + PERSONA_DEFINITION + "\n\n" + COHORT_DOC,
)
async def get_persona(
    analysis: AnalysisDep,
    dimension: Annotated[str, Query(description="See GET /analytics/dimensions.")],
    cohort_a: Annotated[str, Query(max_length=500, description="Cohort a (the leads).")] = (
        "created"
    ),
    cohort_b: Annotated[
        str, Query(max_length=500, description="Cohort b (the signed); `none` for one cohort.")
    ] = "signed",
    date_from: DateFrom = None,
    date_to: DateTo = None,
    granularity: Literal["week", "month"] | None = None,
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level.")] = 0.05,
    age_bands: Annotated[
        str | None, Query(max_length=100, description="Age cut points, e.g. 18,21,26,31,41,51.")
    ] = None,
    tag_cloud_size: Annotated[int, Query(ge=0, le=200)] = 50,
) -> PersonaOut:
    win = analysis.window(date_from, date_to)
    cuts = parse_age_cuts(age_bands)
    dim = parse_dimension(dimension, await analysis.catalog(), age_cuts=cuts)
    query = PersonaQuery(
        dimension=dim,
        cohort_a=parse_cohort(cohort_a, param="cohort_a"),
        cohort_b=None if cohort_b == "none" else parse_cohort(cohort_b, param="cohort_b"),
        window=win,
        granularity=granularity,
        alpha=alpha,
        age_cuts=cuts,
        cloud_size=tag_cloud_size,
    )
    frames = ["orders", "customer_tags", "tags", *frames_for([dim])]
    result = await analysis.run(frames, persona, query)
    return PersonaOut.model_validate(result)


Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get(
    "/analytics/segments",
    response_model=SegmentsOut,
    responses=problems(),
    description="Segments (SPEC H2).\n\n" + SEGMENTS_DEFINITION + "\n\n" + COHORT_DOC,
)
async def get_segments(
    analysis: AnalysisDep,
    dimensions: Annotated[
        str, Query(max_length=300, description="1–3 dimension keys, comma-separated.")
    ],
    measure: Annotated[str, Query(description="revenue, orders, margin, age or custom:<key>")] = (
        "revenue"
    ),
    cohort: Annotated[str, Query(max_length=500)] = "all",
    date_from: DateFrom = None,
    date_to: DateTo = None,
    age_bands: Annotated[str | None, Query(max_length=100)] = None,
) -> SegmentsOut:
    win = analysis.window(date_from, date_to)
    cuts = parse_age_cuts(age_bands)
    cat = await analysis.catalog()
    keys = [k.strip() for k in dimensions.split(",") if k.strip()]
    if not 1 <= len(keys) <= 3:
        raise ValidationFailed(
            "give one to three dimensions",
            errors=[field_error("dimensions", "1–3 dimension keys", where="query")],
        )
    dims = [parse_dimension(k, cat, param="dimensions", age_cuts=cuts) for k in keys]
    frames = ["orders", *frames_for(dims)]
    if measure.startswith("custom:"):
        key = measure.removeprefix("custom:")
        if cat.custom_fields.get(key, ("", ""))[1] != "number":
            raise ValidationFailed(
                f"measure {measure!r} is not a number custom field",
                errors=[field_error("measure", "unknown measure", where="query")],
            )
        frames.append(measure)
    elif measure not in MEASURES:
        raise ValidationFailed(
            f"unknown measure {measure!r}; use {', '.join(MEASURES)} or custom:<number field>",
            errors=[field_error("measure", "unknown measure", where="query")],
        )
    parsed = parse_cohort(cohort, param="cohort")
    if "tag" in parsed.ids:
        frames += ["customer_tags", "tags"]
    query = SegmentsQuery(dims, measure, parsed, win, cuts)
    result = await analysis.run(frames, segments, query)
    return SegmentsOut.model_validate(result)


@router.get(
    "/analytics/rfm",
    response_model=RfmOut,
    responses=problems(),
    description="RFM (SPEC H3).\n\n" + RFM_DEFINITION,
)
async def get_rfm(
    analysis: AnalysisDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    segment: RfmSegment | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RfmOut:
    win = analysis.window(date_from, date_to)
    query = RfmQuery(win, segment, limit, offset)
    result = await analysis.run(["orders"], rfm, query)
    return RfmOut.model_validate(result)


@router.get(
    "/analytics/value-matrix",
    response_model=ValueMatrixOut,
    responses=problems(),
    description="Value matrix (SPEC H4).\n\n" + VALUE_MATRIX_DEFINITION,
)
async def get_value_matrix(
    analysis: AnalysisDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    sales_threshold_cents: Annotated[float | None, Query(ge=0)] = None,
    margin_threshold: Annotated[float | None, Query(ge=-100, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> ValueMatrixOut:
    win = analysis.window(date_from, date_to)
    query = ValueMatrixQuery(win, sales_threshold_cents, margin_threshold, limit)
    result = await analysis.run(["orders"], value_matrix, query)
    return ValueMatrixOut.model_validate(result)


@router.get(
    "/analytics/pyramid",
    response_model=PyramidOut,
    responses=problems(),
    description="Customer pyramid (SPEC H5).\n\n" + PYRAMID_DEFINITION,
)
async def get_pyramid(
    analysis: AnalysisDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    cuts: Annotated[
        str | None, Query(max_length=50, description="Three increasing percentages: 1,5,20.")
    ] = None,
) -> PyramidOut:
    win = analysis.window(date_from, date_to)
    query = PyramidQuery(win, parse_cuts(cuts))
    result = await analysis.run(["orders"], pyramid, query)
    return PyramidOut.model_validate(result)


@router.get(
    "/analytics/retention",
    response_model=RetentionOut,
    responses=problems(),
    description="Retention and churn (SPEC H6).\n\n" + RETENTION_DEFINITION,
)
async def get_retention(
    analysis: AnalysisDep,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
    churn_factor: Annotated[float, Query(gt=0, le=100)] = 2.0,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RetentionOut:
    query = RetentionQuery(utcnow(), analysis.tz, months, churn_factor, limit, offset)
    result = await analysis.run(["orders"], retention, query)
    return RetentionOut.model_validate(result)


MinSupport = Annotated[
    float, Query(gt=0, le=1, description="Minimum support, a fraction of transactions (0–1].")
]
MinConfidence = Annotated[float, Query(ge=0, le=1, description="Minimum confidence (0–1).")]
MaxLen = Annotated[int, Query(ge=2, le=4, description="Largest item set.")]


@router.get(
    "/analytics/basket",
    response_model=BasketOut,
    responses=problems(),
    description="Basket analysis (SPEC H7).\n\n" + BASKET_DEFINITION,
)
async def get_basket(
    analysis: AnalysisDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    min_support: MinSupport = 0.01,
    min_confidence: MinConfidence = 0.2,
    max_len: MaxLen = 3,
    limit: Limit = 100,
) -> BasketOut:
    win = analysis.window(date_from, date_to)
    query = BasketQuery(win, min_support, min_confidence, max_len, limit)
    frames = ["orders", "order_lines", "products"]
    result = await analysis.run(frames, basket, query)
    return BasketOut.model_validate(result)


@router.get(
    "/customers/{customer_id}/recommendations",
    response_model=list[Recommendation],
    responses=problems(404),
    description='Products this customer may buy next: "customers who bought X also bought Y" '
    "(SPEC H7), from the basket rules of the last year within your scope.\n\n" + BASKET_DEFINITION,
)
async def get_recommendations(
    customer_id: int,
    analysis: AnalysisDep,
    min_support: MinSupport = 0.01,
    min_confidence: MinConfidence = 0.2,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[Recommendation]:
    await get_readable(analysis.session, analysis.principal, Customer, customer_id)
    win = analysis.window(None, None)
    query = BasketQuery(win, min_support, min_confidence, 3, limit)
    frames = ["orders", "order_lines", "products"]
    result = await analysis.run(frames, recommendations, customer_id, query)
    return [Recommendation.model_validate(r) for r in result]


@router.get(
    "/analytics/lead-scores",
    response_model=LeadScoresOut,
    responses=problems(),
    description="Lead scoring (SPEC H8).\n\n" + LEAD_SCORE_DEFINITION,
)
async def get_lead_scores(
    analysis: AnalysisDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> LeadScoresOut:
    query = LeadQuery(utcnow(), analysis.tz, limit, offset)
    frames = ["customer_tags", "tags"]
    result = await analysis.run(frames, lead_scores, query)
    return LeadScoresOut.model_validate(result)


@router.get(
    "/analytics/products",
    response_model=ProductsOut,
    responses=problems(),
    description="Product performance (SPEC H9).\n\n" + PRODUCTS_DEFINITION,
)
async def get_products(
    analysis: AnalysisDep,
    by: Literal["product", "category", "channel"] = "product",
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> ProductsOut:
    win = analysis.window(date_from, date_to)
    frames = ["orders", "order_lines", "products"]
    result = await analysis.run(frames, products, ProductsQuery(win, by))
    return ProductsOut.model_validate(result)
