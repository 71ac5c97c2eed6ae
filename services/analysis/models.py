"""The analysis service keeps its state in Redis (queue, results, cache, buckets); its Postgres
schema ``analysis`` holds only Alembic's version table, so that it migrates like every service."""

from __future__ import annotations

from shared.db import make_base

Base = make_base("analysis")
metadata = Base.metadata
