"""What the edge programs use of Python 3.9+ that an edge's Python 3.8 (JetPack 5) lacks."""

from __future__ import annotations

import sys

__all__ = ["removeprefix", "to_thread"]

if sys.version_info >= (3, 9):
    from asyncio import to_thread
else:  # pragma: no cover - Python 3.8
    import asyncio
    import contextvars
    import functools
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

    async def to_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``asyncio.to_thread``: run ``func`` in the default executor, context variables kept."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        return await loop.run_in_executor(None, call)


def removeprefix(text: str, prefix: str) -> str:
    """``str.removeprefix`` (3.9)."""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text
