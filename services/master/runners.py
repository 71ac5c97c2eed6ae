"""The master's background runners, built on the context in the app's lifespan: the composition
root, imported by ``app`` only. Routes reach each runner by the typed dependency declared beside
its class (``BuildRunnerDep``, ``RemovalsDep``, ``ReconcilerDep``, ``MembershipDep``,
``ArtifactAccessDep``), which ``install`` makes answerable."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import State

from services.master.builds.removal import Removals
from services.master.builds.service import BuildRunner
from services.master.context import MasterContext
from services.master.reconcile.service import Reconciler
from services.master.sites.membership import Membership


@dataclass
class Runners:
    builds: BuildRunner
    removals: Removals
    reconciler: Reconciler
    membership: Membership

    @classmethod
    def on(cls, ctx: MasterContext) -> Runners:
        builds = BuildRunner(ctx)
        removals = Removals(ctx)
        membership = Membership(ctx.settings, ctx.setup)
        reconciler = Reconciler(ctx, builds, membership, remove_ai=removals.remove)
        membership.health = reconciler.health
        return cls(builds=builds, removals=removals, reconciler=reconciler, membership=membership)

    def install(self, state: State) -> None:
        """Where the runners' dependencies find them."""
        state.builds = self.builds
        state.removals = self.removals
        state.reconciler = self.reconciler
        state.membership = self.membership
        state.artifact_access = self.reconciler.artifact_access

    async def start(self) -> None:
        if self.membership.registers:
            await self.membership.beat()  # registered before the first pass: it knows its clusters
        self.membership.start()
        await self.reconciler.open()
        self.reconciler.start()

    async def stop(self) -> None:
        await self.membership.stop()
        await self.reconciler.stop()
        await self.removals.stop()
        await self.builds.stop()
