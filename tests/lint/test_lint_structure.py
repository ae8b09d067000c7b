"""The JSON Schemas in schema/: the built-in interpreter agrees with `jsonschema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osqsdk.lint._inputs import Loader
from osqsdk.lint._structure import conforms, errors, schema_for
from osqsdk.lint.rules.inputs import _parts

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config", "pack", "fleet"])
def test_schemas_are_valid_draft7(name: str) -> None:
    jsonschema.Draft7Validator.check_schema(schema_for(name))


def test_config_and_pack_schemas_share_their_definitions() -> None:
    assert schema_for("config")["definitions"] == schema_for("pack")["definitions"]


def _agree(value: Any, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    theirs = list(validator.iter_errors(value))
    assert conforms(value, schema) == (not theirs)
    mine = list(errors(value, schema))
    assert bool(mine) == bool(theirs)
    # every path we report is one jsonschema also finds a problem at (or below)
    their_paths = [tuple(e.absolute_path) for e in theirs]
    for ctx in theirs:
        for sub in ctx.context or []:
            their_paths.append(tuple(ctx.absolute_path) + tuple(sub.absolute_path))
    for path, _ in mine:
        assert any(p[:len(path)] == path or path[:len(p)] == p for p in their_paths), path


def test_agreement_on_every_corpus_document(shared: Path) -> None:
    loader = Loader([str(shared / "corpora")])
    docs = loader.load_all()
    checked = 0
    for doc in docs:
        for _, value, schema in _parts(doc):
            _agree(value, schema)
            checked += 1
    assert checked > 60


values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 700000) | st.text(max_size=8)
    | st.sampled_from(["3600", " 60 ", "x1", "-5"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["queries", "query", "interval", "platform", "snapshot", "shard",
                         "discovery", "packs", "schedule", "decorators", "load", "interval",
                         "views", "options", "file_paths", "name", "logging", "a"]),
        inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["config", "pack", "fleet-query", "fleet-pack"]))
def test_agreement_on_generated_documents(value: Any, which: str) -> None:
    if which.startswith("fleet"):
        schema = {**schema_for("fleet"), "$ref": f"#/definitions/{which.split('-')[1]}"}
    else:
        schema = schema_for(which)
    _agree(value, schema)


def test_shipped_schema_files_are_json() -> None:
    for path in (REPO / "schema").glob("*.json"):
        json.loads(path.read_text())
