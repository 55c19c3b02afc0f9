"""Helpers that build real upload files in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence

import openpyxl


def xlsx_bytes(rows: Sequence[Sequence[object]], *, extra_sheets: int = 0) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "客户"
    for row in rows:
        sheet.append(list(row))
    for n in range(extra_sheets):
        other = book.create_sheet(f"Other{n}")
        other.append(["名称"])
        other.append([f"second sheet {n}"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
