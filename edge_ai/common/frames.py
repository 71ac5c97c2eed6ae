"""Frames from a camera: an RTSP (or HTTP) stream, a video file, an image folder or one image.

OpenCV is imported only when a source is opened: the weather AI's schedule mode and the
monitoring AI never need it. Every ``read`` blocks (network, decoding): call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Union

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")


class FrameUnavailable(Exception):
    """No frame right now (stream down, unreadable file); the caller backs off and tries again."""


def _cv2():
    import cv2

    return cv2


def describe(spec: str) -> str:
    """The source for logs, without credentials (RTSP URLs carry the camera's user and password)."""
    from edge_common.redaction import redact

    return redact(spec)


class ImageFolderSource:
    """The folder's images in name order, round and round (a stand-in camera for tests and
    demos)."""

    def __init__(self, path: Path):
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self.paths = [path]
        if not self.paths:
            raise FrameUnavailable(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._next = 0
        self._cache: dict[Path, Any] = {}

    def read(self) -> Any:
        path = self.paths[self._next % len(self.paths)]
        self._next += 1
        frame = self._cache.get(path)
        if frame is None:
            frame = _cv2().imread(str(path))
            if frame is None:
                raise FrameUnavailable(f"{path}: not a readable image")
            if len(self._cache) < 64:
                self._cache[path] = frame
        return frame

    def close(self) -> None:
        self._cache.clear()


class VideoSource:
    """A video file (played at its own frame rate, looped) or a live stream (reopened when it
    drops)."""

    def __init__(self, spec: str):
        self.spec = spec
        self.live = spec.startswith(STREAM_SCHEMES)
        self._cap: Any = None
        self._started = 0.0
        self._fps = 0.0
        self._pos = 0

    def _open(self) -> Any:
        """Open the source; the capture (also kept as ``self._cap``)."""
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            raise FrameUnavailable(f"cannot open {describe(self.spec)}")
        self._cap = cap
        self._fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        self._started = time.monotonic()
        self._pos = 0
        return cap

    def read(self) -> Any:
        cap = self._cap if self._cap is not None else self._open()
        if not self.live:
            # Skip ahead to where the clock says the video is, so a 5 fps reader of a 25 fps file
            # sees the scene move at its real speed.
            target = int((time.monotonic() - self._started) * self._fps)
            while self._pos < target:
                if not cap.grab():
                    break
                self._pos += 1
        ok, frame = cap.read()
        self._pos += 1
        if not ok or frame is None:
            self.close()
            if self.live:
                raise FrameUnavailable(f"stream {describe(self.spec)} gave no frame")
            cap = self._open()  # end of file: loop
            ok, frame = cap.read()
            if not ok or frame is None:
                raise FrameUnavailable(f"{self.spec}: no frame could be decoded")
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SnapshotSource:
    """A camera's still-image URL (``http://user:pass@cam/snapshot.jpg``): one GET per frame, the
    credentials sent as HTTP basic auth, never logged."""

    def __init__(self, spec: str, timeout: float = 5.0):
        self.spec = spec
        self.timeout = timeout

    def read(self) -> Any:
        import base64
        import urllib.error
        import urllib.request
        from urllib.parse import unquote, urlsplit, urlunsplit

        import numpy as np  # with OpenCV: the edge extra only

        parts = urlsplit(self.spec)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        request = urllib.request.Request(bare)
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = type(exc).__name__
            raise FrameUnavailable(f"snapshot {describe(self.spec)}: {problem}") from None
        frame = _cv2().imdecode(np.frombuffer(data, dtype=np.uint8), _cv2().IMREAD_COLOR)
        if frame is None:
            raise FrameUnavailable(f"snapshot {describe(self.spec)}: not an image")
        return frame

    def close(self) -> None:
        pass


FrameSource = Union[ImageFolderSource, VideoSource, SnapshotSource]  # evaluated on 3.8 too


def open_source(spec: str) -> FrameSource:
    """An image folder, one image, a video file, a camera's snapshot URL, or a stream URL."""
    still = Path(spec.split("?", 1)[0]).suffix.lower() in IMAGE_SUFFIXES
    if spec.startswith(("http://", "https://")) and still:
        return SnapshotSource(spec)
    if spec.startswith(STREAM_SCHEMES):
        return VideoSource(spec)
    path = Path(spec)
    if not path.exists():
        raise FrameUnavailable(f"{spec}: no such file or folder")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path)
    return VideoSource(str(path))
