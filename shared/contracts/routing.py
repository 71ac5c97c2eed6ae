"""The optimizer's routing of one edge (``GET /routing/{nid}``): where its analysis runs and
whether its hard frames go up. Read by the edge's YOLO worker (the field's poll) and by the VMS,
which accepts a helper edge's detections for the source node only while this says the helper
analyses it. ``GET /routing`` answers every edge whose analysis or hard frames leave it
(``RoutingReport``, read by the console)."""

from __future__ import annotations

from pydantic import BaseModel

from edge_common.vocabulary import AnalysisRoute

__all__ = ["AnalysisRoute", "EdgeRouting", "RoutingReport"]


class EdgeRouting(BaseModel):
    nid: str
    analysis: AnalysisRoute = AnalysisRoute.LOCAL
    helper_nid: str | None = None
    route_low_confidence: bool = False
    confidence_threshold: float
    analysis_url: str | None = None
    low_confidence_share: float | None = None
    frames_sent_up_share: float | None = None
    decision_id: str | None = None
    updated_at: str | None = None

    def helped_by(self, helper_nid: str) -> bool:
        return self.analysis == AnalysisRoute.EDGE and self.helper_nid == helper_nid


class RoutingReport(BaseModel):
    """GET /routing: the edges whose analysis or hard frames leave the edge."""

    items: list[EdgeRouting]
