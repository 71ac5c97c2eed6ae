"""What a video container says about its video in its headers (frames, fps, duration, size),
read by hand from the file on disk without decoding anything: MP4/MOV (ISO BMFF), AVI (RIFF) and
Matroska/WebM (EBML). The gateway checks its limits on this before OpenCV touches the file
(issue 25 item 4: an 8000 x 8000 AVI of 780 KB used to cost ~560 MB to decode its first frame).

Only headers are read, at most ``MAX_HEADER_BYTES`` of them; a file that is none of these
containers, or whose headers lack what is needed, is not a video the gateway analyses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_HEADER_BYTES = 8 * 1024 * 1024  # moov / hdrl / Tracks larger than this are refused
MAX_BOXES = 10_000


class NotAVideo(ValueError):
    """The file is not a container this module reads, or its headers are incomplete."""


@dataclass(frozen=True)
class VideoHeader:
    container: str
    width: int
    height: int
    frames: int
    fps: float
    duration_s: float


def read_header(path: Path) -> VideoHeader:
    with path.open("rb") as f:
        head = f.read(16)
        size = path.stat().st_size
        if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            return _avi(f, size)
        if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
            return _mp4(f, size)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _matroska(f, size)
    raise NotAVideo("the body is not a video container (MP4/MOV, AVI, MKV/WebM)")


def _read(f: BinaryIO, offset: int, n: int) -> bytes:
    if n > MAX_HEADER_BYTES:
        raise NotAVideo(f"a header of {n} bytes is over {MAX_HEADER_BYTES}")
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise NotAVideo("the file ends inside its headers (truncated)")
    return data


# ---- ISO BMFF (MP4, MOV, 3GP) --------------------------------------------------------------


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    found: list[tuple[bytes, int, int]] = []
    i = start
    while i + 8 <= end and len(found) < MAX_BOXES:
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        header = 8
        if size == 1:
            if i + 16 > end:
                raise NotAVideo("a box header is truncated")
            (size,) = struct.unpack(">Q", data[i + 8 : i + 16])
            header = 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            raise NotAVideo(f"the box {kind!r} overruns its parent")
        found.append((kind, i + header, i + size))
        i += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def _mp4(f: BinaryIO, size: int) -> VideoHeader:
    offset = 0
    moov: bytes | None = None
    for _ in range(MAX_BOXES):  # top level: seek from box to box, read moov only
        if offset + 8 > size:
            break
        box_size, kind = struct.unpack(">I4s", _read(f, offset, 8))
        header = 8
        if box_size == 1:
            (box_size,) = struct.unpack(">Q", _read(f, offset + 8, 8))
            header = 16
        elif box_size == 0:
            box_size = size - offset
        if box_size < header or offset + box_size > size:
            raise NotAVideo(f"the box {kind!r} overruns the file (truncated)")
        if kind == b"moov":
            moov = _read(f, offset + header, box_size - header)
            break
        offset += box_size
    if moov is None:
        raise NotAVideo("the MP4 has no moov box (no track headers)")
    for kind, start, end in _boxes(moov):
        if kind != b"trak":
            continue
        track = _mp4_video_track(moov, start, end)
        if track is not None:
            return track
    raise NotAVideo("the MP4 has no video track")


def _mp4_video_track(data: bytes, start: int, end: int) -> VideoHeader | None:
    mdia = _child(data, start, end, b"mdia")
    if mdia is None:
        return None
    hdlr = _child(data, *mdia, b"hdlr")
    if hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
        return None
    mdhd = _child(data, *mdia, b"mdhd")
    minf = _child(data, *mdia, b"minf")
    stbl = _child(data, *minf, b"stbl") if minf else None
    if mdhd is None or stbl is None:
        raise NotAVideo("the MP4's video track lacks its media header or sample table")
    s = mdhd[0]
    if data[s] == 1:
        timescale, duration = struct.unpack(">IQ", data[s + 20 : s + 32])
    else:
        timescale, duration = struct.unpack(">II", data[s + 12 : s + 20])
    stsz = _child(data, *stbl, b"stsz")
    stsd = _child(data, *stbl, b"stsd")
    if stsz is None or stsd is None:
        raise NotAVideo("the MP4's video track lacks its sample sizes or description")
    (frames,) = struct.unpack(">I", data[stsz[0] + 8 : stsz[0] + 12])
    entry = stsd[0] + 8  # version/flags, entry count
    if entry + 36 > stsd[1]:
        raise NotAVideo("the MP4's sample description is truncated")
    width, height = struct.unpack(">HH", data[entry + 32 : entry + 36])
    tkhd = _child(data, start, end, b"tkhd")
    if tkhd is not None:  # the display size may be larger than the coded one: take the larger
        t_end = tkhd[1]
        tw, th = struct.unpack(">II", data[t_end - 8 : t_end])
        width, height = max(width, tw >> 16), max(height, th >> 16)
    seconds = duration / timescale if timescale else 0.0
    fps = frames / seconds if seconds > 0 else 0.0
    return VideoHeader("mp4", width, height, frames, fps, seconds)


# ---- AVI ------------------------------------------------------------------------------------


def _riff_chunks(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    found: list[tuple[bytes, int, int]] = []
    i = start
    while i + 8 <= end and len(found) < MAX_BOXES:
        kind, size = struct.unpack("<4sI", data[i : i + 8])
        if i + 8 + size > end:
            raise NotAVideo(f"the AVI chunk {kind!r} overruns its list (truncated)")
        found.append((kind, i + 8, i + 8 + size))
        i += 8 + size + (size & 1)
    return found


def _avi(f: BinaryIO, size: int) -> VideoHeader:
    kind, length, form = struct.unpack("<4sI4s", _read(f, 12, 12))
    if kind != b"LIST" or form != b"hdrl":
        raise NotAVideo("the AVI does not start with its header list (hdrl)")
    hdrl = _read(f, 24, length - 4)
    width = height = frames = 0
    us_per_frame = 0
    fps = 0.0
    for kind, start, end in _riff_chunks(hdrl, 0, len(hdrl)):
        if kind == b"avih" and end - start >= 40:
            us_per_frame, _, _, _, frames = struct.unpack("<5I", hdrl[start : start + 20])
            width, height = struct.unpack("<II", hdrl[start + 32 : start + 40])
        elif kind == b"LIST" and hdrl[start : start + 4] == b"strl":
            chunks = {k: (s, e) for k, s, e in _riff_chunks(hdrl, start + 4, end)}
            strh, strf = chunks.get(b"strh"), chunks.get(b"strf")
            if strh is None or hdrl[strh[0] : strh[0] + 4] != b"vids":
                continue
            scale, rate = struct.unpack("<II", hdrl[strh[0] + 20 : strh[0] + 28])
            (stream_frames,) = struct.unpack("<I", hdrl[strh[0] + 32 : strh[0] + 36])
            frames = max(frames, stream_frames)
            fps = rate / scale if scale else fps
            if strf is not None and strf[1] - strf[0] >= 12:
                w, h = struct.unpack("<ii", hdrl[strf[0] + 4 : strf[0] + 12])
                width, height = max(width, abs(w)), max(height, abs(h))
    if not width or not height:
        raise NotAVideo("the AVI has no video stream header")
    if not fps and us_per_frame:
        fps = 1_000_000 / us_per_frame
    return VideoHeader("avi", width, height, frames, fps, frames / fps if fps else 0.0)


# ---- Matroska / WebM ------------------------------------------------------------------------

SEGMENT, INFO, TRACKS, TRACK_ENTRY, VIDEO, CLUSTER = (
    0x18538067,
    0x1549A966,
    0x1654AE6B,
    0xAE,
    0xE0,
    0x1F43B675,
)
TIMECODE_SCALE, DURATION, TRACK_TYPE, DEFAULT_DURATION = 0x2AD7B1, 0x4489, 0x83, 0x23E383
PIXEL_WIDTH, PIXEL_HEIGHT = 0xB0, 0xBA


def _vint(data: bytes, i: int, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at ``i``: (value, length); -1 for an unknown size."""
    if i >= len(data):
        raise NotAVideo("the file ends inside an element header (truncated)")
    first = data[i]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or i + length > len(data):
        raise NotAVideo("an element header is invalid")
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[i + 1 : i + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return -1, length
    return value, length


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found: list[tuple[int, int, int]] = []
    i = start
    while i < end and len(found) < MAX_BOXES:
        eid, n = _vint(data, i, keep_marker=True)
        size, m = _vint(data, i + n, keep_marker=False)
        body = i + n + m
        stop = end if size < 0 else min(body + size, end)
        found.append((eid, body, stop))
        if eid == CLUSTER or size < 0:
            break  # the frames start here: every header is before them
        i = stop
    return found


def _uint(data: bytes, start: int, end: int) -> int:
    return int.from_bytes(data[start:end], "big")


def _matroska(f: BinaryIO, size: int) -> VideoHeader:
    data = _read(f, 0, min(size, MAX_HEADER_BYTES))
    top = _elements(data, 0, len(data))
    segment = next(((s, e) for eid, s, e in top if eid == SEGMENT), None)
    if segment is None:
        raise NotAVideo("the Matroska file has no segment")
    scale, duration = 1_000_000, 0.0
    width = height = 0
    frame_ns = 0
    for eid, start, end in _elements(data, *segment):
        if eid == INFO:
            for iid, s, e in _elements(data, start, end):
                if iid == TIMECODE_SCALE:
                    scale = _uint(data, s, e)
                elif iid == DURATION and e - s in (4, 8):
                    duration = struct.unpack(">f" if e - s == 4 else ">d", data[s:e])[0]
        elif eid == TRACKS:
            for tid, s, e in _elements(data, start, end):
                if tid != TRACK_ENTRY:
                    continue
                fields = {k: (a, b) for k, a, b in _elements(data, s, e)}
                kind = fields.get(TRACK_TYPE)
                if kind is None or _uint(data, *kind) != 1 or VIDEO not in fields:
                    continue
                video = {k: (a, b) for k, a, b in _elements(data, *fields[VIDEO])}
                if PIXEL_WIDTH in video and PIXEL_HEIGHT in video:
                    width, height = (
                        _uint(data, *video[PIXEL_WIDTH]),
                        _uint(data, *video[PIXEL_HEIGHT]),
                    )
                if DEFAULT_DURATION in fields:
                    frame_ns = _uint(data, *fields[DEFAULT_DURATION])
                break
    if not width or not height:
        raise NotAVideo("the Matroska file has no video track with a size")
    seconds = duration * scale / 1e9
    fps = 1e9 / frame_ns if frame_ns else 0.0
    if seconds <= 0 or fps <= 0:
        raise NotAVideo(
            "the Matroska file's headers give no duration or frame rate (a live stream?)"
        )
    return VideoHeader("matroska", width, height, round(seconds * fps), fps, seconds)
