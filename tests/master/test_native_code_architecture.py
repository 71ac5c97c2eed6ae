"""The agent-pull runtime refuses a package whose native code is for another architecture than
the one the edge's agent reported (the push agent's refusal is run end to end in
tests/agent/test_dependencies.py): the reconcile pass records the driver's refusal as the
deployment's failure, with the reason."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.master.drivers.base import AiArtifact, DriverError, EdgeTarget, Workload
from services.master.pull.board import DesiredBoard
from services.master.pull.driver import PullAgentDriver
from services.master.pull.notices import NoticePublisher
from shared.contracts.updates import ObservedSet

EDGE = EdgeTarget(name="jetson-01", nid="0x0a")


def workload(architectures: tuple[str, ...], native: bool) -> Workload:
    ai = AiArtifact(
        id=7,
        filename="fieldapp",
        version="01",
        ai_class="01",
        package_digest="sha256:" + "a" * 64,
        architectures=architectures,
        native_code=native,
    )
    return Workload(deployment_id=3, edge=EDGE, ai=ai, command=["python", "main.py"])


@pytest.fixture
def driver() -> PullAgentDriver:
    board = DesiredBoard(lambda nid: "key-" + nid)
    return PullAgentDriver(board, NoticePublisher(None, registry=CollectorRegistry()))


async def test_native_code_for_another_architecture_is_refused(driver):
    driver.board.report(EDGE.nid, ObservedSet(architecture="arm64"))
    with pytest.raises(DriverError) as exc:
        await driver.apply(workload(("amd64",), native=True))
    assert str(exc.value) == (
        "AI 7 (fieldapp-01 01) carries native code for amd64 only and edge jetson-01 is arm64: "
        "pack its wheels for arm64 too (edgectl ai pack --platform linux/arm64) and upload that "
        "as a new version"
    )
    assert not driver.board.edge(EDGE.nid).staged  # nothing for the agent


@pytest.mark.parametrize(
    ("reported", "architectures", "native"),
    [
        ("arm64", ("amd64", "arm64"), True),  # it has wheels for this edge
        ("arm64", (), False),  # pure Python: any machine
        (None, ("amd64",), True),  # an agent that reports no architecture decides itself
    ],
)
async def test_what_the_edge_can_install_is_staged(driver, reported, architectures, native):
    driver.board.report(EDGE.nid, ObservedSet(architecture=reported))
    await driver.apply(workload(architectures, native))
    assert list(driver.board.edge(EDGE.nid).staged) == ["fieldapp-01"]
