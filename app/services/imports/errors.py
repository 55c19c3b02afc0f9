"""The error a whole import file is refused with (as opposed to errors of single rows)."""

from __future__ import annotations

from typing import Literal

from app.errors import ValidationFailed

ImportFileErrorCode = Literal[
    "unsupported_format",
    "unreadable_file",
    "file_too_large",
    "bad_encoding",
    "empty_file",
    "no_data_rows",
    "too_many_rows",
    "missing_header",
    "bad_mapping",
]


class ImportFileError(ValidationFailed):
    """The file cannot be imported at all; ``code`` says why, ``message`` says it for people.

    A 422 problem detail when it reaches the API, with ``code`` (and ``line`` when known) as
    extra members.
    """

    slug, title = "import-file", "The file cannot be imported"

    def __init__(self, code: ImportFileErrorCode, message: str, *, line: int | None = None) -> None:
        if line is None:
            super().__init__(message, code=code)
        else:
            super().__init__(message, code=code, line=line)
        self.code: ImportFileErrorCode = code
        self.message = message
        self.line = line
