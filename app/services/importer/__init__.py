"""Imports of customers, contacts and orders (SPEC I1): uploads, dry runs and the import job.

Built on the file layer in ``app.services.imports`` (reading, mapping, cleaning), this package
adds what needs the database:

- ``runs``: the upload (size-limited, refused with a 422 problem when the file cannot be
  imported), the dry-run preview, the import record, the error report, and the job that
  processes queued imports in chunks, one transaction per chunk;
- ``customers``, ``contacts``, ``orders``: per entity, a *plan* — every row resolved in a few
  set-based queries for the whole file (owners, tags, customers, products, duplicates) into
  create / update / skip / fail — and the *write* of a chunk of planned rows with multi-row
  statements;
- ``duplicates``: SPEC B4's duplicate check (normalised phone incl. contact phones, e-mail, name
  similarity) for a whole file at once;
- ``references``: customers named by id, phone or name, within the importer's scope.
"""
