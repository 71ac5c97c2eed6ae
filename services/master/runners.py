"""The master's background runners, built on the context in the app's lifespan, and the
dependencies routes reach them by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from services.master.builds.removal import Removals
from services.master.builds.service import BuildRunner
from services.master.context import MasterContext
from services.master.reconcile.service import Reconciler


@dataclass
class Runners:
    builds: BuildRunner
    removals: Removals
    reconciler: Reconciler

    @classmethod
    def on(cls, ctx: MasterContext) -> Runners:
        builds = BuildRunner(ctx)
        return cls(builds=builds, removals=Removals(ctx), reconciler=Reconciler(ctx, builds))

    def start(self) -> None:
        self.reconciler.start()

    async def stop(self) -> None:
        await self.reconciler.stop()
        await self.removals.stop()
        await self.builds.stop()


def runners(request: Request) -> Runners:
    return cast(Runners, request.app.state.runners)


RunnersDep = Annotated[Runners, Depends(runners)]
