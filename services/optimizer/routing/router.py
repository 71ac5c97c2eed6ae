"""Where each edge's analysis goes, as the YOLO worker on the edge reads it."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from services.optimizer import models as m
from services.optimizer.engine import store
from services.optimizer.engine.runner import RunnerDep
from shared.auth import ReaderAuth
from shared.contracts.routing import AnalysisRoute, EdgeRouting, RoutingReport
from shared.db import SessionDep
from shared.errors import Forbidden

router = APIRouter(tags=["routing"])


def _view(row: m.Route | None, nid: str, analysis_url: str, threshold: float) -> EdgeRouting:
    return EdgeRouting(
        nid=nid,
        analysis=row.analysis if row else AnalysisRoute.LOCAL,
        helper_nid=row.helper_nid if row else None,
        route_low_confidence=bool(row and row.route_low_confidence),
        confidence_threshold=threshold,
        analysis_url=analysis_url,
        low_confidence_share=row.low_confidence_share if row else None,
        frames_sent_up_share=row.frames_sent_up_share if row else None,
        decision_id=row.decision_id if row else None,
        updated_at=row.updated_at.isoformat() if row else None,
    )


@router.get(
    "/routing/{nid}", summary="Routing for one edge's YOLO worker (its own edge token, or staff)"
)
async def routing(nid: str, runner: RunnerDep, session: SessionDep, who: ReaderAuth) -> EdgeRouting:
    if who.kind == "edge" and who.nid != nid:
        raise Forbidden("an edge reads only its own routing")
    threshold = runner.policies(await store.overrides(session)).low_confidence.confidence_threshold
    return _view(
        await session.get(m.Route, nid), nid, runner.settings.effective_analysis_url, threshold
    )


@router.get(
    "/routing",
    summary="Edges whose analysis or hard frames leave the edge, with the share of frames sent up",
)
async def routing_report(runner: RunnerDep, session: SessionDep, _: ReaderAuth) -> RoutingReport:
    threshold = runner.policies(await store.overrides(session)).low_confidence.confidence_threshold
    rows = (
        await session.scalars(
            select(m.Route)
            .where((m.Route.analysis != AnalysisRoute.LOCAL) | m.Route.route_low_confidence)
            .order_by(m.Route.nid)
        )
    ).all()
    url = runner.settings.effective_analysis_url
    return RoutingReport(items=[_view(r, r.nid, url, threshold) for r in rows])
