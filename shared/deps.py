"""One way routes reach what a service built at start (its settings, its runners, its clients): a
typed ``Annotated`` dependency per object, declared beside the object's class and read from the
app's state here, in one place. A router never reads ``request.app.state`` itself::

    ReconcilerDep = Annotated[Reconciler, Depends(from_app_state("reconciler", Reconciler))]

    @router.post("/reconcile")
    async def reconcile(reconciler: ReconcilerDep) -> ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from shared.signing import KeyRing

T = TypeVar("T")


def from_app_state(name: str, kind: type[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """The dependency that answers ``app.state.<name>`` (set by the service's lifespan or
    ``create_app``) as a ``kind``. Async: FastAPI runs a plain function dependency in a worker
    thread, a hop per request for an attribute read."""

    async def dependency(connection: HTTPConnection) -> T:  # a request or a websocket
        return cast(T, getattr(connection.app.state, name))

    dependency.__name__ = f"{name}_dependency"
    dependency.__qualname__ = dependency.__name__
    return dependency


# The public keys every service verifies credentials with (set by shared.app, kept fresh).
KeyRingDep = Annotated[KeyRing, Depends(from_app_state("key_ring", KeyRing))]
