"""One way routes reach what a service built at start (its settings, its runners, its clients): a
typed ``Annotated`` dependency per object, declared beside the object's class and read from the
app's state here, in one place. A router never reads ``request.app.state`` itself::

    ReconcilerDep = Annotated[Reconciler, Depends(from_app_state("reconciler", Reconciler))]

    @router.post("/reconcile")
    async def reconcile(reconciler: ReconcilerDep) -> ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from fastapi import Request

T = TypeVar("T")


def from_app_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """The dependency that answers ``app.state.<name>`` (set by the service's lifespan or
    ``create_app``) as a ``kind``."""

    def dependency(request: Request) -> T:
        return cast(T, getattr(request.app.state, name))

    dependency.__name__ = f"{name}_dependency"
    dependency.__qualname__ = dependency.__name__
    return dependency
