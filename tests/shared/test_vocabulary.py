"""The wire vocabulary from the optimizer to the edge is spelled once (edge_common.vocabulary): no
module of the platform or the edge programs defines those states again or writes a parameter key
as a string literal (docstrings aside)."""

from __future__ import annotations

import ast
from pathlib import Path

from edge_common import vocabulary
from edge_common.vocabulary import Param

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "edge_ai", "edge_common", "edgectl")
KEYS = {value for name, value in vars(Param).items() if name.isupper()}
STATES = ("WorkloadState", "DesiredState", "ObservedState", "AnalysisRoute")
# Other things that share a key's spelling, each named: the optimizer's policy "focus" and the
# YOLO worker's profile "focus"; the optimizer's route table column and the edge's
# edgeconfig.xml fields (start values of the live params, not the params).
SAME_SPELLING_ELSEWHERE = {
    ("shared/contracts/decisions.py", "focus"),  # Policy.FOCUS
    ("edge_ai/yolo/app.py", "focus"),  # the worker's profile name
    ("services/optimizer/engine/store.py", "route_low_confidence"),  # routes table row
    ("services/optimizer/decisions/service.py", "route_low_confidence"),  # routes row in a view
    ("edge_ai/common/config.py", "analysis_url"),  # EdgeConfig field
    ("edge_ai/common/config.py", "route_low_confidence"),  # EdgeConfig field
}


def _sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text())


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr):
            found.add(id(node.body[0].value))
    return found


def test_parameter_keys_are_written_only_in_the_vocabulary():
    literals = set()
    for name, tree in _sources():
        if name == "edge_common/vocabulary.py":
            continue
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in KEYS
                and id(node) not in docs
            ):
                literals.add((name, node.value))
    assert literals - SAME_SPELLING_ELSEWHERE == set(), "use edge_common.vocabulary.Param"
    assert literals >= SAME_SPELLING_ELSEWHERE  # the list names only what is still there


def _defined_names(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from (t.id for t in targets if isinstance(t, ast.Name))


def test_the_states_are_defined_once():
    defined = sorted(
        (name, defined)
        for name, tree in _sources()
        for defined in _defined_names(tree)
        if defined in STATES
    )
    assert defined == sorted(("edge_common/vocabulary.py", state) for state in STATES)
    assert {str(s) for s in vocabulary.WorkloadState} == {
        "pending",
        "running",
        "restarting",
        "failed",
        "stopped",
    }
