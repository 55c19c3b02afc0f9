"""What every analysis shares: the window, cohorts, dimensions and their buckets."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl

from app.errors import ValidationFailed, field_error

COHORT_DOC = """\
- **Window**: `date_from` .. `date_to` inclusive, calendar days in the business time
  zone (`KEHU_BUSINESS_TIMEZONE`), i.e. the instants [date_from 00:00, date_to + 1 day 00:00).
- **Cohort**: `basis[;field=value|value...]`. The basis picks customers by a moment in the
  window: `created` (entered in the window: the leads), `signed` (signed in the window),
  `ordered` (ordered in the window) or `all` (every live customer in scope, whatever the
  window). Filters narrow it: `industry`, `level`, `source`, `province`, `city`,
  `gender`, `kind`, `deal_status` (values), `owner` (user ids), `tag` (tag ids the
  customer carried at the end of the window). Several values of one field mean any of them;
  several fields must all hold.
- **Dimension**: a customer field (`industry`, `level`, `source`, `province`, `city`,
  `gender`, `kind`, `deal_status`), `age_band` (age at the end of the window from the
  birth date, bands from the cut points), `tag_group:<id>` (the tags of that group the customer
  carried at the end of the window, from the tag history; a customer with several counts in each)
  or `custom:<key>` (a select or text custom field; a multi-select counts in each value).
  Customers without a value fall in the bucket `null`.
- **Scope**: every figure counts only the customers the caller may read."""

FIELD_DIMENSIONS: Mapping[str, str] = {
    "industry": "行业",
    "level": "客户级别",
    "source": "客户来源",
    "province": "省份",
    "city": "城市",
    "gender": "性别",
    "kind": "客户类型",
    "deal_status": "成交状态",
}
COHORT_BASES = ("created", "signed", "ordered", "all")
COHORT_VALUE_FILTERS = (*FIELD_DIMENSIONS,)
COHORT_ID_FILTERS = ("owner", "tag")
DEFAULT_AGE_CUTS = (18, 21, 26, 31, 41, 51)
AGE_BAND_LABEL = "年龄（按出生日期）"
MAX_WINDOW_DAYS = 3660


@dataclass(frozen=True)
class Window:
    date_from: dt.date
    date_to: dt.date
    start: dt.datetime
    end: dt.datetime
    tz: str

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def contains(self, column: str) -> pl.Expr:
        """Rows whose ``column`` moment falls in the window (start included, end not)."""
        return (pl.col(column) >= self.start) & (pl.col(column) < self.end)

    def orders(self, orders: pl.DataFrame) -> pl.DataFrame:
        """The orders placed in the window."""
        return orders.filter(self.contains("ordered_at"))


def window(
    date_from: dt.date | None,
    date_to: dt.date | None,
    *,
    tz: str,
    today: dt.date,
    default_days: int = 365,
) -> Window:
    """The analysis window (default: the `default_days` days up to today)."""
    to = date_to or today
    start_day = date_from or to - dt.timedelta(days=default_days - 1)
    if start_day > to:
        raise ValidationFailed(
            "the window is empty: date_from is after date_to",
            errors=[field_error("date_from", "must be on or before date_to", where="query")],
        )
    if (to - start_day).days + 1 > MAX_WINDOW_DAYS:
        raise ValidationFailed(
            f"the window spans more than {MAX_WINDOW_DAYS} days",
            errors=[field_error("date_from", "window too long", where="query")],
        )
    zone = ZoneInfo(tz)

    def instant(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)

    return Window(start_day, to, instant(start_day), instant(to + dt.timedelta(days=1)), tz)


# --- cohorts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    basis: str
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    raw: str = ""


def parse_cohort(raw: str, *, param: str) -> Cohort:
    """`basis[;field=v1|v2...]` → Cohort; anything else is a 422 naming the parameter."""

    def bad(message: str) -> ValidationFailed:
        return ValidationFailed(
            f"{param}: {message}", errors=[field_error(param, message, where="query")]
        )

    parts = [p.strip() for p in raw.split(";")]
    basis = parts[0]
    if basis not in COHORT_BASES:
        raise bad(f"unknown basis {basis!r}; use one of {', '.join(COHORT_BASES)}")
    values: dict[str, tuple[str, ...]] = {}
    ids: dict[str, tuple[int, ...]] = {}
    for part in parts[1:]:
        if not part:
            continue
        name, sep, rest = part.partition("=")
        name = name.strip()
        items = tuple(v.strip() for v in rest.split("|") if v.strip())
        if not sep or not items:
            raise bad(f"filter {part!r} must read field=value[|value...]")
        if name in COHORT_VALUE_FILTERS:
            values[name] = items
        elif name in COHORT_ID_FILTERS:
            try:
                ids[name] = tuple(int(v) for v in items)
            except ValueError:
                raise bad(f"{name} takes numeric ids") from None
        else:
            allowed = ", ".join((*COHORT_VALUE_FILTERS, *COHORT_ID_FILTERS))
            raise bad(f"unknown filter {name!r}; use one of {allowed}")
    return Cohort(basis, values, ids, raw)


def cohort_members(
    customers: pl.DataFrame,
    cohort: Cohort,
    win: Window,
    *,
    orders: pl.DataFrame | None,
    tags: pl.DataFrame | None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The cohort's customers (from already scoped `customers`) with `moment`: when they
    entered it (None for `all`). With `columns`, only those customer columns (and `id`) come
    along: the filters then copy less."""
    frame = customers
    if columns is not None:
        wanted = ["id", "created_at", "signed_at", "owner_id", *cohort.values, *columns]
        frame = customers.select(list(dict.fromkeys(wanted)))
    for name, items in cohort.values.items():
        frame = frame.filter(pl.col(name).is_in(list(items)))
    if "owner" in cohort.ids:
        frame = frame.filter(pl.col("owner_id").is_in(list(cohort.ids["owner"])))
    if "tag" in cohort.ids and tags is not None:
        carrying = tags_at(tags.filter(pl.col("tag_id").is_in(list(cohort.ids["tag"]))), win.end)
        frame = frame.join(
            carrying.select(pl.col("customer_id").alias("id")).unique(), on="id", how="semi"
        )
    in_window = win.contains("moment")
    if cohort.basis == "created":
        frame = frame.with_columns(moment=pl.col("created_at")).filter(in_window)
    elif cohort.basis == "signed":
        frame = frame.with_columns(moment=pl.col("signed_at")).filter(in_window)
    elif cohort.basis == "ordered":
        assert orders is not None
        first = (
            win.orders(orders)
            .group_by("customer_id")
            .agg(moment=pl.col("ordered_at").min())
            .rename({"customer_id": "id"})
        )
        frame = frame.join(first, on="id", how="inner")
    else:
        frame = frame.with_columns(moment=pl.lit(None, dtype=pl.Datetime("us", "UTC")))
    if columns is not None:
        frame = frame.select(list(dict.fromkeys(["id", "moment", *columns])))
    return frame


def in_force(moment: dt.datetime | pl.Expr) -> pl.Expr:
    """Tag spans in force at `moment`: added before it and not removed by then."""
    at = pl.lit(moment) if isinstance(moment, dt.datetime) else moment
    return (pl.col("added_at") < at) & (
        pl.col("removed_at").is_null() | (pl.col("removed_at") >= at)
    )


def tags_at(tags: pl.DataFrame, moment: dt.datetime | pl.Expr) -> pl.DataFrame:
    """Tag spans in force at `moment` (`in_force`)."""
    return tags.filter(in_force(moment))


# --- dimensions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str
    kind: str  # field | age_band | tag_group | custom
    group_id: int | None = None
    custom_key: str | None = None
    # For age bands: the labels in order (buckets sort by them).
    order: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The customer columns its values are read from (tags and custom fields have frames)."""
        if self.kind == "field":
            return (self.key,)
        if self.kind == "age_band":
            return ("birth_date",)
        return ()


@dataclass(frozen=True)
class Catalog:
    """What dimensions exist: tag groups and custom fields (small, read per request)."""

    tag_groups: Mapping[int, str]
    custom_fields: Mapping[str, tuple[str, str]]  # key -> (label, type)


DIMENSION_CUSTOM_TYPES = ("single_select", "multi_select", "text")


def age_band_labels(cuts: Sequence[int]) -> tuple[str, ...]:
    labels = [f"<{cuts[0]}"]
    labels += [f"{low}-{high - 1}" for low, high in itertools.pairwise(cuts)]
    labels.append(f"{cuts[-1]}+")
    return tuple(labels)


def age_band_dimension(cuts: Sequence[int]) -> Dimension:
    """Age at the moment in question, from the birth date (not the 年龄段 tag group)."""
    return Dimension("age_band", AGE_BAND_LABEL, "age_band", order=age_band_labels(cuts))


def parse_age_cuts(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return DEFAULT_AGE_CUTS
    try:
        cuts = tuple(int(v) for v in raw.split(","))
    except ValueError:
        cuts = ()
    if not cuts or any(c <= 0 or c > 150 for c in cuts) or list(cuts) != sorted(set(cuts)):
        raise ValidationFailed(
            "age_bands must be increasing ages, e.g. 18,21,26,31,41,51",
            errors=[field_error("age_bands", "invalid cut points", where="query")],
        )
    return cuts


def parse_dimension(
    raw: str, catalog: Catalog, *, param: str = "dimension", age_cuts: Sequence[int] = ()
) -> Dimension:
    """A dimension key → Dimension; unknown keys are a 422 listing what exists."""
    if raw in FIELD_DIMENSIONS:
        return Dimension(raw, FIELD_DIMENSIONS[raw], "field")
    if raw == "age_band":
        return age_band_dimension(age_cuts or DEFAULT_AGE_CUTS)
    kind, _, arg = raw.partition(":")
    if kind == "tag_group" and arg.isdigit() and int(arg) in catalog.tag_groups:
        return Dimension(raw, catalog.tag_groups[int(arg)], "tag_group", group_id=int(arg))
    if kind == "custom" and arg in catalog.custom_fields:
        label, type_ = catalog.custom_fields[arg]
        if type_ in DIMENSION_CUSTOM_TYPES:
            return Dimension(raw, label, "custom", custom_key=arg)
    raise ValidationFailed(
        f"unknown {param} {raw!r}; GET /api/v1/analytics/dimensions lists them",
        errors=[field_error(param, f"unknown dimension {raw!r}", where="query")],
    )


def frames_for(dimensions: Sequence[Dimension]) -> list[str]:
    names: list[str] = []
    for d in dimensions:
        if d.kind == "tag_group":
            names += ["customer_tags", "tags"]
        elif d.kind == "custom" and d.custom_key:
            names.append(f"custom:{d.custom_key}")
    return names


def bucket_values(
    members: pl.DataFrame,
    dimension: Dimension,
    frames: Mapping[str, pl.DataFrame],
    *,
    tz: str,
    age_cuts: Sequence[int] = DEFAULT_AGE_CUTS,
) -> pl.DataFrame:
    """(id, at, value) for `members` (id, at, and the customer columns): each member's values
    of the dimension at its moment `at`; one row per value, `null` when it has none."""
    base = members.select("id", "at")
    if dimension.kind == "field":
        return members.select("id", "at", pl.col(dimension.key).cast(pl.String).alias("value"))
    if dimension.kind == "age_band":
        at_day = pl.col("at").dt.convert_time_zone(tz).dt.date()
        birthday_passed = (at_day.dt.month().cast(pl.Int32) * 100 + at_day.dt.day()) >= (
            pl.col("birth_date").dt.month().cast(pl.Int32) * 100 + pl.col("birth_date").dt.day()
        )
        age = (
            at_day.dt.year().cast(pl.Int32)
            - pl.col("birth_date").dt.year().cast(pl.Int32)
            - pl.when(birthday_passed).then(0).otherwise(1)
        )
        labels = age_band_labels(age_cuts)
        # The band's index: how many cut points the age has reached.
        index = pl.sum_horizontal(*((age >= cut).cast(pl.Int32) for cut in age_cuts))
        expr = index.replace_strict(list(range(len(labels))), list(labels), return_dtype=pl.String)
        return members.select(
            "id",
            "at",
            pl.when(pl.col("birth_date").is_null()).then(None).otherwise(expr).alias("value"),
        )
    if dimension.kind == "tag_group":
        meta = frames["tags"].filter(pl.col("group_id") == dimension.group_id)
        spans = frames["customer_tags"].filter(pl.col("tag_id").is_in(meta["tag_id"].implode()))
        carried = (
            spans.join(base.rename({"id": "customer_id"}), on="customer_id", how="inner")
            .filter(
                (pl.col("added_at") < pl.col("at"))
                & (pl.col("removed_at").is_null() | (pl.col("removed_at") >= pl.col("at")))
            )
            .join(meta.select("tag_id", "tag"), on="tag_id")
            .select(pl.col("customer_id").alias("id"), "at", pl.col("tag").alias("value"))
            .unique(["id", "value"])
        )
        missing = base.join(carried.select("id"), on="id", how="anti").with_columns(
            value=pl.lit(None, dtype=pl.String)
        )
        return pl.concat([carried, missing])
    assert dimension.custom_key is not None
    values = frames[f"custom:{dimension.custom_key}"].rename({"customer_id": "id"})
    joined = base.join(values, on="id", how="left")
    listed = joined.filter(pl.col("value").str.starts_with("["))
    plain = joined.filter(~pl.col("value").str.starts_with("[") | pl.col("value").is_null())
    if listed.height:
        exploded = listed.with_columns(pl.col("value").str.json_decode(pl.List(pl.String))).explode(
            "value"
        )
        plain = pl.concat([plain, exploded])
    return plain.with_columns(
        pl.when(pl.col("value") == "").then(None).otherwise(pl.col("value")).alias("value")
    )


def revenue_in(orders: pl.DataFrame, win: Window) -> pl.DataFrame:
    """(id, revenue_cents, cost_cents, orders) per customer: orders placed in the window."""
    return (
        orders.lazy()  # lazy: only the columns summed are filtered
        .filter(win.contains("ordered_at"))
        .group_by("customer_id")
        .agg(
            revenue_cents=pl.col("amount_cents").sum(),
            cost_cents=pl.col("cost_cents").sum(),
            orders=pl.len(),
        )
        .rename({"customer_id": "id"})
        .collect()
    )
