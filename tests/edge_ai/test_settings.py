"""The edge programs' settings loader: precedence flag > environment > edgeconfig > default,
types, and one-line errors naming the flag or variable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_ai.common.config import ConfigError
from edge_ai.monitoring.app import parse_options as monitoring_options
from edge_ai.weather.app import WeatherSettings
from edge_common.settings import SettingsError, edgeconfig_values, load_settings, setting


@dataclass
class Demo:
    period: float = setting(30.0, env="DEMO_PERIOD", edgeconfig="demo/Period", help="seconds")
    count: int = setting(3, env=("DEMO_COUNT", "OLD_COUNT"), help="how many")
    enabled: bool = setting(False, env="DEMO_ENABLED", help="on or off")
    name: str | None = setting(None, env="DEMO_NAME", flag="--label", help="a name")
    mode: str = setting("a", env="DEMO_MODE", choices=("a", "b"), help="mode")


def load(argv: list[str], env: dict[str, str], file: dict[str, str] | None = None) -> Demo:
    return load_settings(Demo, argv, prog="demo", env=env, edgeconfig=file)


def test_defaults_when_nothing_is_set() -> None:
    assert load([], {}) == Demo(period=30.0, count=3, enabled=False, name=None, mode="a")


def test_flag_beats_environment_beats_edgeconfig_beats_default() -> None:
    file = {"demo/Period": "7"}
    assert load([], {}, file).period == 7.0
    assert load([], {"DEMO_PERIOD": "8"}, file).period == 8.0
    assert load(["--period", "9"], {"DEMO_PERIOD": "8"}, file).period == 9.0
    # An empty variable counts as unset.
    assert load([], {"DEMO_PERIOD": ""}, file).period == 7.0


def test_types_aliases_and_flag_names() -> None:
    got = load(
        ["--label", "cam", "--enabled", "yes"],
        {"OLD_COUNT": "5", "DEMO_MODE": "b"},
    )
    assert (got.count, got.enabled, got.name, got.mode) == (5, True, "cam", "b")
    assert load([], {"DEMO_COUNT": "6", "OLD_COUNT": "5"}).count == 6


def test_secret_env_file_is_read_after_the_environment(tmp_path: Path) -> None:
    secrets = tmp_path / "secret.env"
    secrets.write_text("DEMO_NAME=from-file\nDEMO_COUNT=4\n", encoding="utf-8")
    env = {"EDGE_SECRET_ENV_FILE": str(secrets), "DEMO_COUNT": "2"}
    got = load([], env)
    assert (got.name, got.count) == ("from-file", 2)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--period", "soon"], {}, "--period: expected a number, got 'soon'"),
        ([], {"DEMO_PERIOD": "soon"}, "DEMO_PERIOD: expected a number, got 'soon'"),
        ([], {"OLD_COUNT": "2.5"}, "OLD_COUNT: expected an integer, got '2.5'"),
        ([], {"DEMO_ENABLED": "maybe"}, "DEMO_ENABLED: expected true or false, got 'maybe'"),
        ([], {"DEMO_MODE": "c"}, "DEMO_MODE: expected one of a, b, got 'c'"),
        (["--mode", "c"], {}, "argument --mode: invalid choice: 'c'"),
        (["--nope"], {}, "unrecognized arguments: --nope"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_source(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load(argv, env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_edgeconfig_value_names_the_key() -> None:
    with pytest.raises(SettingsError, match="edgeconfig demo/Period: expected a number"):
        load([], {}, {"demo/Period": "x"})


def test_edgeconfig_values_reads_sections(tmp_path: Path) -> None:
    path = tmp_path / "edgeconfig.xml"
    path.write_text(
        "<Configuration><vms><IP>127.0.0.1</IP><Port>6432</Port></vms>"
        "<demo><Period>12</Period></demo></Configuration>",
        encoding="utf-8",
    )
    values = edgeconfig_values(str(path))
    assert values["vms/Port"] == "6432"
    assert load([], {}, values).period == 12.0
    assert edgeconfig_values(str(tmp_path / "missing.xml")) == {}


def test_the_programs_keep_their_flags_and_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEATHER_PERIOD", "12")
    monkeypatch.setenv("EDGE_POST_INTERVAL", "2")
    got = load_settings(WeatherSettings, ["--time-zone", "UTC", "--api-port", "0"], prog="weather")
    assert (got.period, got.interval, got.time_zone, got.api_port) == (12.0, 2.0, "UTC", 0)
    monkeypatch.setenv("MONITORING_LOAD_PERIOD_S", "often")
    with pytest.raises(ConfigError, match="MONITORING_LOAD_PERIOD_S: expected a number"):
        monitoring_options(["--variant", "SUNNY"])


def test_yolo_keeps_its_aliases_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_ai.yolo.app import YoloSettings

    monkeypatch.delenv("YOLO_ROUTING_FILE", raising=False)
    monkeypatch.setenv("EDGE_LIVE_FILE", "/run/live.json")
    monkeypatch.setenv("analysis_for", "0x02")
    monkeypatch.setenv("YOLO_CONF_THRESHOLD", "0.4")
    got = load_settings(YoloSettings, ["--source", "cam.mp4", "--clip-classes", ""], prog="yolo")
    assert (got.routing_file, got.analysis_for, got.conf) == ("/run/live.json", "0x02", 0.4)
    assert (got.source, got.clip_classes, got.helped_mode, got.clip_budget_bps) == (
        "cam.mp4",
        "",
        "rate",
        128000,
    )
    monkeypatch.setenv("YOLO_HELPED_MODE", "sleep")
    with pytest.raises(SettingsError, match="YOLO_HELPED_MODE: expected one of pause, rate"):
        load_settings(YoloSettings, [], prog="yolo")
