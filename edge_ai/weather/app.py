"""Weather AI: every second ``POST /save_edgeData {nid, date, time, result}``.

Where the result comes from (``--source``):

* ``schedule`` (default, like the field's stand-in): the codes of ``--sequence`` in turn, each for
  ``--period`` seconds, on the wall clock (so two boxes with the same schedule agree).
* ``classifier``: ``edge_ai.weather.classifier`` over frames of ``--video`` (RTSP URL, video
  file, image folder), one frame a second.
* ``operator``: ``--initial`` until someone sets another value through the local API.

Whatever the source, ``PUT /result {"result": "2"}`` on the local API (``--api-port``) overrides
it until ``DELETE /result``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # Python 3.8: the backport (requirements.txt installs it there)
    from backports.zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # type: ignore[no-redef]

from edge_ai.common.config import ConfigError, EdgeConfig, load_config
from edge_ai.common.options import ProgramSettings, parse_codes
from edge_ai.common.runtime import Stop, every, run_program, start_api
from edge_ai.common.vms_client import VmsClient
from edge_common.compat import to_thread
from edge_common.settings import load_settings, setting

log = logging.getLogger("edge_ai.weather")

PROGRAM = "weather"
DEFAULT_CODES = "SUNNY=0,CLOUDY=1,RAINY=2,SNOWY=3,FOGGY=4,NIGHT=5"


@dataclass
class WeatherOptions:
    config: EdgeConfig
    node_id: str
    source: str
    sequence: list[str]
    period: float
    video: str | None
    initial: str
    codes: dict[str, str]
    interval: float
    zone: ZoneInfo


@dataclass
class WeatherSettings(ProgramSettings):
    source: str = setting(
        "schedule",
        env="WEATHER_SOURCE",
        choices=("schedule", "classifier", "operator"),
        help="where the result code comes from",
    )
    sequence: str = setting("0,2", env="WEATHER_SEQUENCE", help="schedule: codes in turn")
    period: float = setting(30.0, env="WEATHER_PERIOD", help="schedule: seconds per code")
    video: str | None = setting(
        None, env="WEATHER_VIDEO", help="classifier: RTSP URL, video file or image folder"
    )
    initial: str = setting("0", env="WEATHER_INITIAL", help="operator: the code until one is set")
    codes: str = setting(
        DEFAULT_CODES, env="WEATHER_CODES", help="condition -> code mapping of the classifier"
    )
    time_zone: str = setting(
        "Asia/Seoul",
        env="WEATHER_TIME_ZONE",
        help="zone of the date/time it posts, as the field's devices do (the VMS's fleet default)",
    )


def parse_options(argv: list[str] | None = None) -> WeatherOptions:
    args = load_settings(
        WeatherSettings,
        argv,
        prog="weather",
        description="Weather (environment) AI, ai_class 00: posts /save_edgeData every second.",
    )
    try:
        zone = ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"--time-zone: unknown time zone {args.time_zone!r}") from exc
    config = load_config(args.config)
    if args.api_port is not None:
        config = replace(config, api_port=args.api_port)
    sequence = [c.strip() for c in args.sequence.split(",") if c.strip()]
    if not sequence:
        raise ConfigError("--sequence: at least one code")
    if args.period <= 0 or args.interval <= 0:
        raise ConfigError("--period and --interval must be positive")
    if args.source == "classifier" and not args.video:
        raise ConfigError(
            "--source classifier needs --video (or $WEATHER_VIDEO): "
            "an RTSP URL, a video file or an image folder"
        )
    return WeatherOptions(
        config=config,
        node_id=config.require_node_id(),
        source=args.source,
        sequence=sequence,
        period=args.period,
        video=args.video,
        initial=args.initial,
        codes=parse_codes(args.codes),
        interval=args.interval,
        zone=zone,
    )


def scheduled_code(sequence: list[str], period: float, now: float) -> str:
    return sequence[int(now // period) % len(sequence)]


def environment_record(node_id: str, result: str, when: datetime) -> dict[str, str]:
    """The field's payload; date and time are the edge's local time (set TZ on the box)."""
    return {
        "nid": node_id,
        "date": when.strftime("%Y%m%d"),
        "time": when.strftime("%H%M%S"),
        "result": result,
    }


class ResultState:
    """The code to post now: the source's, unless the operator has set one."""

    def __init__(self, options: WeatherOptions):
        self.options = options
        self.override: str | None = None
        self.classified: str | None = None
        self.operator_value = options.initial

    def current(self, now: float) -> str | None:
        if self.override is not None:
            return self.override
        if self.options.source == "schedule":
            return scheduled_code(self.options.sequence, self.options.period, now)
        if self.options.source == "operator":
            return self.operator_value
        return self.classified


async def run_classifier(options: WeatherOptions, state: ResultState, stop: Stop) -> None:
    """One frame a second through the rules; stream failures back off and retry."""
    from edge_ai.common.frames import (
        FrameSource,
        FrameUnavailable,
        describe,
        open_source,
    )
    from edge_ai.weather.classifier import SmoothedClassifier

    video = options.video
    if video is None:  # parse_options refuses the classifier without one
        raise ConfigError("--source classifier needs --video (or $WEATHER_VIDEO)")
    classifier = SmoothedClassifier()
    source: FrameSource | None = None
    failures = 0
    while not stop.event.is_set():
        try:
            if source is None:
                source = await to_thread(open_source, video)
                log.info("classifying frames from %s", describe(video))
            frame = await to_thread(source.read)
            condition = await to_thread(classifier.update, frame)
            code = options.codes.get(condition)
            if code is None:
                log.warning(
                    "condition %s has no code in the mapping; keeping %s",
                    condition,
                    state.classified,
                )
            elif code != state.classified:
                log.info("classifier: %s (code %s)", condition, code)
                state.classified = code
            failures = 0
            delay = 1.0
        except FrameUnavailable as exc:
            failures += 1
            delay = min(30.0, 2.0 ** min(failures, 5))
            log.warning("no frame (%s); retrying in %.0fs", exc, delay)
            if source is not None:
                await to_thread(source.close)
                source = None
        if await stop.wait(delay):
            break
    if source is not None:
        await to_thread(source.close)


async def run(options: WeatherOptions, stop: Stop) -> None:
    config = options.config
    vms = VmsClient(config, program=PROGRAM)
    vms.start()
    state = ResultState(options)

    def put_result(body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or "result" not in body:
            return 400, {"detail": 'body must be {"result": "<code>"}', "field": "result"}
        value = body["result"]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            return 400, {
                "detail": "result must be a non-empty string or integer code",
                "field": "result",
            }
        state.override = str(value).strip()
        log.info("operator set result %s", state.override)
        return 200, {"result": state.override, "override": True}

    def delete_result(_body: Any) -> tuple[int, Any]:
        state.override = None
        return 200, {"result": state.current(time.time()), "override": False}

    api = start_api(
        config,
        PROGRAM,
        vms,
        lambda: {
            "result": state.current(time.time()),
            "override": state.override is not None,
            "source": options.source,
        },
    )
    if api is not None:
        api.route("PUT", "/result", put_result)
        api.route("DELETE", "/result", delete_result)
        api.route(
            "GET",
            "/result",
            lambda _b: (
                200,
                {"result": state.current(time.time()), "override": state.override is not None},
            ),
        )
        await api.start()

    classifier_task = (
        asyncio.create_task(run_classifier(options, state, stop))
        if options.source == "classifier"
        else None
    )
    log.info(
        "weather AI for node %s posting to %s every %gs (source %s)",
        options.node_id,
        config.vms_url,
        options.interval,
        options.source,
    )

    def tick() -> None:
        now = time.time()
        result = state.current(now)
        if result is None:
            log.debug("no result yet (classifier has not seen a frame)")
            return
        vms.submit(
            "environment",
            environment_record(options.node_id, result, datetime.fromtimestamp(now, options.zone)),
        )

    try:
        await every(options.interval, stop, tick)
    finally:
        if classifier_task is not None:
            stop.event.set()
            await classifier_task
        if api is not None:
            await api.close()
        await vms.close()
        log.info("weather AI stopped")


def main(argv: list[str] | None = None) -> int:
    return run_program(PROGRAM, lambda: parse_options(argv), run)
