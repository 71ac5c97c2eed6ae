"""A cycle's record (the decision log, the policies' memory, the routes, earlier decisions'
outcomes) is written set-based: one statement per kind however many rows (a cold cycle over a
large fleet writes thousands of each; one statement per row cost a round trip each), and what
is read back is what was written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.optimizer import models as m
from services.optimizer.engine import store
from services.optimizer.model.context import RouteState
from services.optimizer.model.plan import DecisionRecord
from shared.contracts.decisions import Action, Outcome, Policy, UpdateOp
from shared.contracts.routing import AnalysisRoute
from tests.optimizer.fleet import NOW

N = 300


def decisions(prefix: str) -> list[DecisionRecord]:
    return [
        DecisionRecord(
            id=f"{prefix}{i}",
            at=NOW + timedelta(seconds=i),
            policy=Policy.OVERLOAD,
            action=Action.HANDOFF_TO_EDGE,
            reason=f"load above the thresholds for {i} s",
            edge_id=i,
            edge_name=f"edge-{i}",
            nid=f"0x{i:x}",
            deployment_id=1000 + i,
            inputs={"cpu_avg": 91.25, "stale": False, "last_seen": NOW.isoformat(), "n": None},
            operations=[
                UpdateOp(op="update", id=1000 + i, params={"analysis_route": "edge"}),
            ],
        )
        for i in range(N)
    ]


async def test_a_cycle_is_recorded_in_one_statement_per_kind(db: str) -> None:
    engine = create_async_engine(db)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        """Each statement the database executes: an executemany runs it once per row."""
        statements.extend([statement] * (len(params) if many else 1))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        rows = store.decision_rows(
            decisions("a"), "cycle-1", dry_run=False, outcome_of=lambda d: (Outcome.PENDING, None)
        )
        memory: dict[tuple[str, int], dict[str, Any] | None] = {
            (Policy.OVERLOAD, i): {"above_since": NOW.isoformat(), "avoid": {"7": "x"}}
            for i in range(N)
        }
        routes = [
            RouteState(f"0x{i:x}", i, AnalysisRoute.EDGE, "0xfff", i % 2 == 0, 0.5, None, f"a{i}")
            for i in range(N)
        ]
        async with sessions() as s, s.begin():
            statements.clear()
            await store.save_decisions(s, rows)
            await store.save_memory(s, memory)
            await store.save_routes(s, routes)
            assert len(statements) == 3, statements

        # The next cycle: half the memory forgotten, the rest changed; routes changed; every
        # decision of the first cycle has its outcome.
        changed: dict[tuple[str, int], dict[str, Any] | None] = {
            (Policy.OVERLOAD, i): None if i % 2 else {"below_since": "later"} for i in range(N)
        }
        moved = [
            RouteState(r.nid, r.edge_id, AnalysisRoute.LOCAL, None, False, None, None, "b")
            for r in routes[: N // 3]
        ]
        outcomes = {
            f"a{i}": (Outcome.SUCCEEDED, None) if i % 3 else (Outcome.FAILED, f"crashed {i}")
            for i in range(N)
        }
        async with sessions() as s, s.begin():
            statements.clear()
            await store.save_memory(s, changed)
            await store.save_routes(s, moved)
            await store.set_outcomes(s, outcomes)
            assert len(statements) == 4, statements  # memory: one delete, one upsert

        async with sessions() as s:
            assert await store.memory(s) == {
                (Policy.OVERLOAD, i): {"below_since": "later"} for i in range(0, N, 2)
            }
            read = await store.routes(s)
            assert read == {r.nid: r for r in [*moved, *routes[N // 3 :]]}
            assert await store.pending_decisions(s) == []
            logged = await s.execute(
                select(
                    m.Decision.id,
                    m.Decision.at,
                    m.Decision.inputs,
                    m.Decision.operations,
                    m.Decision.outcome,
                    m.Decision.outcome_detail,
                )
            )
            found = {r.id: r for r in logged}
        assert len(found) == N
        for row in rows:
            got = found[row["id"]]
            assert got.at == row["at"]
            assert got.inputs == row["inputs"]
            assert got.operations == row["operations"]
            assert (got.outcome, got.outcome_detail) == outcomes[row["id"]]
    finally:
        await engine.dispose()
