"""Import and export of customers, contacts and orders (SPEC I1, I2): the database-free layer.

``files`` reads an upload into rows of strings, ``mapping`` proposes which column is which field,
``clean`` normalises and validates each row, ``export`` writes formula-safe CSV and XLSX.
"""

from app.services.imports.clean import CellError, RowCleaner, RowError, clean_row
from app.services.imports.errors import ImportFileError
from app.services.imports.export import iter_csv, iter_xlsx, safe_cell, write_xlsx
from app.services.imports.files import SourceRow, Table, detect_format, read_table
from app.services.imports.mapping import (
    ENTITIES,
    CustomFieldSpec,
    Entity,
    ImportField,
    check_mapping,
    import_fields,
    suggest_mapping,
)

__all__ = [
    "ENTITIES",
    "CellError",
    "CustomFieldSpec",
    "Entity",
    "ImportField",
    "ImportFileError",
    "RowCleaner",
    "RowError",
    "SourceRow",
    "Table",
    "check_mapping",
    "clean_row",
    "detect_format",
    "import_fields",
    "iter_csv",
    "iter_xlsx",
    "read_table",
    "safe_cell",
    "suggest_mapping",
    "write_xlsx",
]
