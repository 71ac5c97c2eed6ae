"""A query's rows as an Arrow table without a Python object per value: Postgres streams them
with ``COPY (query) TO STDOUT`` in CSV and pyarrow's C++ reader parses the text into the
columns of a schema (shared.contracts.columnar), in a thread.

The query's output columns are those of the schema, in its order: numbers and booleans as they
are (CSV ``t``/``f``), times as microseconds since the epoch (``int8``), everything else as
text. In Postgres' CSV a NULL is an unquoted empty field and an empty text a quoted one (``""``),
and a value with a comma, a quote or a line break is quoted; the reader is told exactly that
(only the unquoted empty field is null, quoted fields may hold line breaks), so text such as
``NA`` or ``null`` stays text.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import ClauseElement
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from shared.db import driver_connection


async def copy_table(session: AsyncSession, stmt: ClauseElement, schema: pa.Schema) -> pa.Table:
    """The rows of ``stmt`` (its output columns those of ``schema``, in order) as a table of
    ``schema``, in the order the statement gives them."""
    compiled = stmt.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"COPY needs a query, not {type(stmt).__name__}")
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    chunks: list[bytes] = []

    async def keep(chunk: bytes) -> None:
        chunks.append(chunk)

    conn = await driver_connection(session)
    await conn.copy_from_query(str(compiled), *params, output=keep, format="csv")
    return await asyncio.to_thread(from_csv, b"".join(chunks), schema)


def _read_type(field: pa.Field) -> pa.DataType:
    """What the CSV holds for a field: times as microseconds since the epoch."""
    return pa.int64() if pa.types.is_timestamp(field.type) else field.type


def from_csv(data: bytes, schema: pa.Schema) -> pa.Table:
    """Postgres' CSV (no header) of ``schema``'s columns as one table of ``schema`` (one chunk
    per column)."""
    if not data:
        return schema.empty_table()
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=schema.names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: _read_type(f) for f in schema},
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    columns: list[Any] = [
        pc.cast(table.column(f.name), f.type) if pa.types.is_timestamp(f.type) else table[f.name]
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema).combine_chunks()
