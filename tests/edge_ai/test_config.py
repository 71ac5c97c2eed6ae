"""edgeconfig.xml in the field's format, our optional elements, environment over the file, and
clear errors (exit code 2 naming the file and the problem) when it cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_ai.common.config import ConfigError, load_config
from tests.helpers.processes import REPO

FIELD_FILE = """<Configuration>
    <vms>
        <IP>127.0.0.1</IP>
        <Port>6432</Port>
        <Path>usage</Path>
    </vms>
</Configuration>
"""

FULL_FILE = """<Configuration>
    <vms><IP>127.0.0.1</IP><Port>7001</Port><Path>save_edgeData</Path></vms>
    <node><NID>0x07</NID><Name>edge-07</Name><Token>edg_abc.def.ghi</Token></node>
    <analysis><URL>http://127.0.0.1:7001/analysis/</URL><RouteLowConfidence>yes</RouteLowConfidence></analysis>
    <buffer><Path>{buf}</Path><MaxRecords>50</MaxRecords></buffer>
</Configuration>
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgeconfig.xml"
    path.write_text(text)
    return path


def test_the_fields_file_as_it_is(tmp_path):
    config = load_config(write(tmp_path, FIELD_FILE), env={})
    assert config.vms_url == "http://127.0.0.1:6432"
    assert config.vms_path == "usage"
    assert config.node_id is None and config.token is None and config.analysis_url is None
    assert config.route_low_confidence is False
    with pytest.raises(ConfigError, match="EDGE_NODE_ID"):
        config.require_node_id()


def test_optional_elements(tmp_path):
    config = load_config(write(tmp_path, FULL_FILE.format(buf=tmp_path / "b")), env={})
    assert config.vms_url == "http://127.0.0.1:7001"
    assert (config.node_id, config.node_name, config.token) == (
        "0x07",
        "edge-07",
        "edg_abc.def.ghi",
    )
    assert config.analysis_url == "http://127.0.0.1:7001/analysis"
    assert config.route_low_confidence is True
    assert config.buffer_dir == tmp_path / "b" and config.buffer_max_records == 50
    assert "edg_abc" not in repr(config)  # the token stays out of logs that print the config


def test_environment_over_the_file(tmp_path):
    env = {
        "EDGE_VMS_IP": "127.0.0.2",
        "EDGE_VMS_PORT": "7100",
        "EDGE_NODE_ID": "0x09",
        "EDGE_TOKEN": "tok",
        "EDGE_ANALYSIS_URL": "http://127.0.0.1:9/a",
        "EDGE_ROUTE_LOW_CONFIDENCE": "false",
        "EDGE_BUFFER_DIR": str(tmp_path / "other"),
        "EDGE_BUFFER_MAX_RECORDS": "7",
        "EDGE_API_PORT": "0",
    }
    config = load_config(write(tmp_path, FULL_FILE.format(buf=tmp_path / "b")), env=env)
    assert config.vms_url == "http://127.0.0.2:7100"
    assert (config.node_id, config.token, config.analysis_url) == (
        "0x09",
        "tok",
        "http://127.0.0.1:9/a",
    )
    assert config.route_low_confidence is False
    assert config.buffer_dir == tmp_path / "other" and config.buffer_max_records == 7
    assert config.api_port == 0
    assert (
        load_config(
            write(tmp_path, FIELD_FILE), env={"EDGE_VMS_URL": "http://127.0.0.1:1234/"}
        ).vms_url
        == "http://127.0.0.1:1234"
    )


def test_env_only_when_no_file_was_asked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(env={"EDGE_VMS_URL": "http://127.0.0.1:1"}).source == "environment"
    with pytest.raises(ConfigError, match=r"edgeconfig\.xml: file not found"):
        load_config(env={})
    with pytest.raises(ConfigError, match=r"nothere\.xml: file not found"):
        load_config(
            env={"EDGE_CONFIG": str(tmp_path / "nothere.xml"), "EDGE_VMS_URL": "http://127.0.0.1:1"}
        )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<Configuration><vms><IP>1.2.3.4</IP>", "malformed XML"),
        ("<Config><vms/></Config>", "root element must be <Configuration>"),
        ("<Configuration></Configuration>", "missing <vms> element"),
        ("<Configuration><vms><Port>1</Port></vms></Configuration>", r"missing <vms><IP>"),
        ("<Configuration><vms><IP>127.0.0.1</IP></vms></Configuration>", r"missing <vms><Port>"),
        (
            "<Configuration><vms><IP>127.0.0.1</IP><Port>http</Port></vms></Configuration>",
            r"<vms><Port>: expected an integer",
        ),
        (
            "<Configuration><vms><IP>127.0.0.1</IP><Port>70000</Port></vms></Configuration>",
            r"<vms><Port>: must be between",
        ),
        (
            FIELD_FILE.replace(
                "</Configuration>", "<buffer><MaxRecords>0</MaxRecords></buffer></Configuration>"
            ),
            "MaxRecords",
        ),
        (
            FIELD_FILE.replace(
                "</Configuration>", "<analysis><URL>ftp://x</URL></analysis></Configuration>"
            ),
            r"<analysis><URL>",
        ),
    ],
)
def test_malformed_files_are_named(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)


def test_bad_environment_is_named(tmp_path):
    path = write(tmp_path, FIELD_FILE)
    with pytest.raises(ConfigError, match="EDGE_VMS_PORT"):
        load_config(path, env={"EDGE_VMS_PORT": "x"})
    with pytest.raises(ConfigError, match="EDGE_ROUTE_LOW_CONFIDENCE"):
        load_config(path, env={"EDGE_ROUTE_LOW_CONFIDENCE": "maybe"})


@pytest.mark.parametrize("module", ["edge_ai.weather", "edge_ai.monitoring", "edge_ai.yolo"])
def test_programs_exit_2_naming_the_file(tmp_path, module):
    broken = write(tmp_path, "<Configuration><vms>")
    args = {
        "edge_ai.monitoring": ["--variant", "SUNNY"],
        "edge_ai.yolo": ["--source", str(tmp_path)],
    }.get(module, [])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    for config in (broken, tmp_path / "missing.xml"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--config", str(config), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert str(config) in proc.stderr
        assert ("malformed XML" if config == broken else "file not found") in proc.stderr


def test_weather_without_node_id_exits_2(tmp_path):
    path = write(tmp_path, FIELD_FILE)
    proc = subprocess.run(
        [sys.executable, "-m", "edge_ai.weather", "--config", str(path)],
        env={"PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no node id" in proc.stderr and "EDGE_NODE_ID" in proc.stderr


def test_the_token_from_the_docker_runtimes_secret_env_file(tmp_path):
    """The Docker runtime puts EDGE_TOKEN in the 0600 file named by EDGE_SECRET_ENV_FILE, never in
    the container's spec: the programs post with it (found by running them on podman)."""
    secrets = tmp_path / "secret.env"
    secrets.write_text("EDGE_CAMERA_URL=rtsp://u:p@cam/1\nEDGE_TOKEN=tok-from-file\n")
    env = {"EDGE_VMS_URL": "http://127.0.0.1:6432", "EDGE_SECRET_ENV_FILE": str(secrets)}
    assert load_config(env=env).token == "tok-from-file"
    assert load_config(env={**env, "EDGE_TOKEN": "tok-from-env"}).token == "tok-from-env"
