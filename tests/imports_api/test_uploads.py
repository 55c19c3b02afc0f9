"""Uploads: size limits, refused files, the same file twice, Idempotency-Key on multipart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.models import Customer
from tests.factories import auth
from tests.imports.builders import xlsx_bytes
from tests.imports_api.conftest import URL, count, csv_bytes, imports_stored, run_job, upload

FILE = csv_bytes("客户名称,手机\n甲公司,13800000001\n乙公司,13800000002\n")
GIB = 1024**3


# --- too large: 413 before the body is read --------------------------------------------------


def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="entity"\r\n\r\ncustomers\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n客户名称\r\n"
    ).encode()


async def test_a_declared_1_gib_upload_is_refused_before_a_byte_is_read(app, client, org):
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        pulled += 1
        yield _multipart_head("b0undary")
        while True:
            pulled += 1
            yield b"x" * 1024 * 1024

    response = await client.post(
        URL,
        content=body(),
        headers={
            **auth(app, org.rep_a),
            "Content-Type": "multipart/form-data; boundary=b0undary",
            "Content-Length": str(GIB),
        },
    )

    assert response.status_code == 413
    assert response.json()["type"].endswith("/payload-too-large")
    assert pulled == 0


async def test_a_streamed_upload_is_cut_off_once_past_the_limit(app, client, maker, org):
    limit = app.state.settings.import_max_bytes
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield _multipart_head("b0undary")
        while pulled * 1024 * 1024 < GIB:  # 1 GiB if it were all read
            pulled += 1
            yield b"x" * 1024 * 1024

    response = await client.post(
        URL,
        content=body(),  # no Content-Length: sent chunked
        headers={
            **auth(app, org.rep_a),
            "Content-Type": "multipart/form-data; boundary=b0undary",
        },
    )

    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/payload-too-large")
    assert pulled <= limit // (1024 * 1024) + 2
    assert await imports_stored(maker) == 0


async def test_the_upload_limit_is_the_import_setting_not_the_json_one(app, client, org):
    # 2 MiB is over the 1 MiB default for JSON bodies, well under the 20 MiB import limit.
    filler = "浙江省杭州市西湖区文三路" * 4
    rows = "".join(f"客户{i:06d},138{i:08d},{filler}\n" for i in range(15_000))
    big = csv_bytes("客户名称,手机,地址\n" + rows)
    assert len(big) > 2 * app.state.settings.max_body_bytes

    response = await upload(client, app, org.rep_a, big, dry_run=True)

    assert response.status_code == 200, response.text
    assert response.json()["counts"]["rows"] == 15_000


# --- refused files: 422, nothing stored ------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "logo.png", "unsupported_format"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.xls", "unsupported_format"),
        ("名称\r\n".encode("gbk") + b"\xff\xfe\xfd\x80\x81\r\n", "bad.csv", "bad_encoding"),
        (csv_bytes("手机,邮箱\n13800000000,a@b.cn\n"), "no-name.csv", "missing_header"),
        (csv_bytes("客户名称\n"), "empty.csv", "no_data_rows"),
        (b"", "nothing.csv", "empty_file"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
async def test_a_file_that_cannot_be_imported_is_422_and_nothing_is_stored(
    app, client, maker, org, content, filename, code, dry_run
):
    response = await upload(client, app, org.rep_a, content, filename=filename, dry_run=dry_run)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/import-file") and problem["code"] == code
    assert problem["detail"]
    assert await imports_stored(maker) == 0
    assert await count(maker, Customer) == 0


async def test_gbk_with_a_broken_byte_names_the_line(app, client, org):
    content = "客户名称,手机\r\n甲公司,1\r\n".encode("gbk") + b"\x81\x20bad\r\n"

    problem = (await upload(client, app, org.rep_a, content)).json()

    assert problem["code"] == "bad_encoding" and problem["line"] == 3


@pytest.mark.parametrize(
    ("mapping", "where"),
    [
        ("not json", "mapping"),
        ('["name"]', "mapping"),
        ('{"zero": "name"}', "mapping"),
        ('{"0": "no_such_field"}', "bad_mapping"),
        ('{"7": "name"}', "bad_mapping"),
        ('{"1": "phone"}', "missing_header"),
    ],
)
async def test_a_bad_mapping_is_422(app, client, maker, org, mapping, where):
    response = await client.post(
        URL,
        data={"entity": "customers", "mapping": mapping},
        files={"file": ("a.csv", FILE, "text/csv")},
        headers=auth(app, org.rep_a),
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    if where == "mapping":
        assert problem["errors"][0]["loc"] == ["body", "mapping"]
    else:
        assert problem["code"] == where
    assert await imports_stored(maker) == 0


async def test_unknown_form_values_are_422(app, client, org):
    for data in ({"entity": "opportunities"}, {"entity": "customers", "duplicate_policy": "merge"}):
        response = await client.post(
            URL,
            data=data,
            files={"file": ("a.csv", FILE, "text/csv")},
            headers=auth(app, org.rep_a),
        )
        assert response.status_code == 422


async def test_an_explicit_mapping_is_used(app, client, org):
    file = csv_bytes("A,B,C\n甲公司,x,13800000001\n")

    body = (
        await upload(client, app, org.rep_a, file, mapping={0: "name", 2: "phone"}, dry_run=True)
    ).json()

    assert body["mapping"] == {"0": "name", "2": "phone"}
    assert body["suggested_mapping"] == {}
    assert body["counts"]["create"] == 1


async def test_xlsx_is_imported_from_the_named_sheet(app, client, maker, org):
    content = xlsx_bytes([["客户名称", "手机"], ["工作簿公司", 13800000009]], extra_sheets=1)

    other = (
        await upload(
            client, app, org.rep_a, content, filename="a.xlsx", sheet="Other0", dry_run=True
        )
    ).json()
    queued = await upload(client, app, org.rep_a, content, filename="a.xlsx")
    await run_job(app)

    assert other["sheet"] == "Other0" and other["counts"]["rows"] == 1
    done = (await client.get(queued.headers["Location"], headers=auth(app, org.rep_a))).json()
    assert (done["file_format"], done["sheet"], done["created"]) == ("xlsx", "客户", 1)


# --- the same file twice ---------------------------------------------------------------------


async def test_the_same_file_again_is_a_no_op_pointing_to_the_first_import(app, client, maker, org):
    first = await upload(client, app, org.rep_a, FILE)
    await run_job(app)
    again = await upload(client, app, org.rep_a, FILE, filename="renamed.csv")

    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "done"
    assert await imports_stored(maker) == 1
    assert await run_job(app) == 0
    assert await count(maker, Customer) == 2


async def test_the_same_file_with_another_policy_or_by_another_user_is_a_new_import(
    app, client, maker, org
):
    first = await upload(client, app, org.rep_a, FILE)
    other_policy = await upload(client, app, org.rep_a, FILE, policy="update")
    other_user = await upload(client, app, org.rep_b, FILE)

    assert {first.status_code, other_policy.status_code, other_user.status_code} == {202}
    assert await imports_stored(maker) == 3


async def test_idempotency_key_replays_a_multipart_upload(app, client, maker, org):
    key = {"Idempotency-Key": "upload-1"}
    first = await upload(client, app, org.rep_a, FILE, headers=key)
    # httpx draws a new multipart boundary for every request, as browsers do.
    again = await upload(client, app, org.rep_a, FILE, headers=key)

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert await imports_stored(maker) == 1

    other = await upload(client, app, org.rep_a, csv_bytes("客户名称\n丙公司\n"), headers=key)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await imports_stored(maker) == 1
