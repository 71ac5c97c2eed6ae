"""The package manifest: what is accepted, and that every refusal names the field."""

from __future__ import annotations

import pytest

from services.master.packages import parse_manifest
from shared.errors import Invalid

from .conftest import MANIFEST

TOML = b"""
filename = "weatherai"
version = "01"
ai_class = "00"
command = ["python3", "classify.py"]
[env]
INTERVAL_S = "5"
[resources]
cpu = 0.5
memory_mb = 256
"""


def test_yaml_manifest_parses_every_field():
    m = parse_manifest(MANIFEST.format(version="02").encode())
    assert (m.filename, m.version, m.ai_class, m.condition) == ("monitoring", "02", "01", "SUNNY")
    assert m.command == ["python", "main.py", "--config", "edgeconfig.xml"]
    assert m.env == {"MODEL_PATH": "models/best.pt", "LOG_LEVEL": "info"}
    assert (m.resources.cpu, m.resources.memory_mb, m.resources.gpu) == (1.5, 1024, 0)
    assert m.models == ["models/best.pt"] and m.dockerfile is None
    assert m.repository == "monitoring-01" and m.uses_agent_python()


def test_toml_manifest_with_defaults():
    m = parse_manifest(TOML, "aipackage.toml")
    assert (m.filename, m.ai_class, m.condition, m.resources.gpu) == ("weatherai", "00", None, 0)
    assert m.env == {"INTERVAL_S": "5"}


def _error(text: str, name: str = "aipackage.yaml") -> Invalid:
    with pytest.raises(Invalid) as exc:
        parse_manifest(text.encode(), name)
    return exc.value


BASE = 'filename: monitoring\nversion: "01"\nai_class: "01"\ncommand: [python, main.py]\n'


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (BASE.replace('version: "01"', "version: 01"), "manifest.version", "quote the version"),
        (BASE.replace('version: "01"', 'version: "v1"'), "manifest.version", "dotted numbers"),
        (
            BASE.replace("filename: monitoring", "filename: Monitoring_X"),
            "manifest.filename",
            "lowercase",
        ),
        (
            BASE.replace("filename: monitoring", "filename: " + "a" * 41),
            "manifest.filename",
            "1-40 characters",
        ),
        (BASE.replace('ai_class: "01"', 'ai_class: "1"'), "manifest.ai_class", "two digits"),
        (BASE.replace("command: [python, main.py]\n", ""), "manifest.command", "is required"),
        (
            BASE.replace("command: [python, main.py]", "command: []"),
            "manifest.command",
            "at least 1",
        ),
        (BASE + "condition: sunny\n", "manifest.condition", "uppercase"),
        (BASE + "env: {1BAD: x}\n", "manifest.env", "not a valid environment variable"),
        (BASE + "resources: {cpu: -1}\n", "manifest.resources.cpu", "greater than 0"),
        (BASE + "models: [../outside.pt]\n", "manifest.models", "'..'"),
        (BASE + "dockerfile: /Dockerfile\n", "manifest.dockerfile", "relative path"),
        (BASE + "colour: blue\n", "manifest.colour", "not a manifest field"),
    ],
)
def test_each_bad_field_is_named(text, field, words):
    err = _error(text)
    assert err.field is not None and err.field.startswith(field)
    assert words in err.message
    assert err.message.startswith("aipackage.yaml: ")


def test_malformed_yaml_and_toml():
    err = _error("filename: [unclosed\n")
    assert err.field == "manifest" and "is not valid YAML" in err.message
    err = _error('filename = "x\n', "aipackage.toml")
    assert err.field == "manifest" and "is not valid TOML" in err.message
    err = _error("- just\n- a list\n")
    assert "must be a mapping" in err.message
