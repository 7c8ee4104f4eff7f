"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UTCDateTime` stores timezone-aware datetimes and always returns aware UTC datetimes.
  PostgreSQL keeps ``timestamptz`` natively; SQLite has no time zones, so the value is stored as
  naive UTC text and made aware again when read.
* :data:`JSONValue` is ``JSON`` on SQLite and ``JSONB`` on PostgreSQL.
* :data:`BigID` is a 64-bit surrogate key on PostgreSQL and SQLite's ``INTEGER PRIMARY KEY``
  (the rowid alias, which is 64-bit too and auto-increments).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["BigID", "JSONValue", "UTCDateTime", "utcnow"]


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that refuses naive datetimes and reads back aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the store: "
                "pass an aware datetime (e.g. datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONValue: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
BigID: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
