"""The schema API: loading every format, merging, lookups, and the shipped default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from osqsdk._osquery.columns import ColumnType
from osqsdk.errors import SchemaError
from osqsdk.schema import (
    ColumnSchema,
    Schema,
    TableSchema,
    default_schema,
    load_schema,
    schema_from_data,
    version_key,
)

REPO = Path(__file__).resolve().parents[2]
SITE = "schema/osquery-site/src/data/osquery_schema_versions/5.23.1.json"


def test_default_schema_has_core_tables_with_flags() -> None:
    s = default_schema()
    assert s.osquery_version == "5.23.1"
    assert len(s.tables) > 250
    file = s.table("file")
    assert file is not None and {c.name for c in file.required_columns} == {"path", "directory"}
    pid = s.table("processes").column("pid")
    assert pid.index and pid.type is ColumnType.BIGINT
    assert s.table("yara").name == "yara_file"  # table alias
    assert s.table("osquery_schedule").column("blacklisted").name == "denylisted"
    assert s.table("PROCESSES") is s.table("processes")
    assert s.table("process_events").evented and s.table("processes").cacheable
    assert s.table("shell_history").user_data
    assert default_schema() is s  # cached


def test_default_schema_keeps_column_platforms_and_versions() -> None:
    s = default_schema()
    col = s.table("battery").column("health")
    assert col.platforms == ("darwin",)
    assert not col.hidden  # osquery.io's JSON marks other-platform columns hidden; specs do not
    assert s.table("processes").since == "2.7.0"
    gone = s.removed_table("alf_services")
    assert gone is not None and gone.until and version_key(gone.until) < version_key("5.23.1")
    assert "alf_services" not in s.tables


def test_load_site_json_and_extension_spec_merge(tmp_path: Path, shared: Path) -> None:
    spec = [{"name": "acme_users", "description": "", "url": "", "platforms": ["linux"],
             "evented": False, "cacheable": False, "notes": "", "examples": [],
             "columns": [{"name": "uid", "description": "", "type": "unsigned_bigint",
                          "notes": "", "hidden": False, "required": True, "index": True,
                          "additional": False, "optimized": True, "aliases": ["user_id"]}],
             "aliases": ["acme_accounts"]}]
    ext = tmp_path / "acme.json"
    ext.write_text(json.dumps(spec))
    merged = load_schema(shared / SITE, ext, origin=None)
    t = merged.table("acme_accounts")
    assert t is not None and t.name == "acme_users"
    uid = t.column("user_id")
    assert uid.name == "uid" and uid.type is ColumnType.UNSIGNED_BIGINT
    assert uid.required and uid.optimized
    assert merged.table("processes") is not None
    assert len(merged.tables) == 287


def test_load_fleet_schema_maps_its_types(shared: Path) -> None:
    s = load_schema(shared / "schema/fleet/osquery_fleet_schema.json", origin="fleet")
    assert s.table("mdm").origin == "fleet"
    assert s.table("munki_info").column("version") is not None
    assert any("chrome" in t.platforms for t in s)


def test_specs_master_reads_attributes(shared: Path) -> None:
    s = load_schema(shared / "schema/osquery_specs_master.json")
    assert s.table("shell_history").user_data
    assert s.table("process_events").evented


@pytest.mark.parametrize("payload,needle", [
    ("not json", "not JSON"),
    ('{"hello": 1}', "not a table schema"),
    ('[{"name": "t", "columns": [{"name": "c", "type": "weird"}]}]', "unknown column type"),
    ('[{"name": "t", "columns": [{"type": "text"}]}]', "needs a name"),
    ('[{"name": "t", "columns": [{"name": "c", "type": ["text"]}]}]', "unknown column type"),
])
def test_bad_schema_files_raise_schema_error_naming_the_file(tmp_path: Path, payload: str,
                                                             needle: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(payload)
    with pytest.raises(SchemaError) as info:
        load_schema(bad)
    assert needle in str(info.value)
    assert "bad.json" in str(info.value)


def test_optional_facts_of_the_wrong_shape_are_left_out(tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"name": "t", "platforms": 5, "aliases": {"a": 1}, "columns": [
        {"name": "c", "type": "text", "aliases": 5, "platforms": None}]}]))
    t = load_schema(odd).table("t")
    assert (t.platforms, t.aliases) == ((), ())
    assert (t.column("c").aliases, t.column("c").platforms) == ((), ())
    index = tmp_path / "versions.json"
    index.write_text(json.dumps({"versions": ["5.0.0", "5.1.0"], "tables": {
        "t": {"first": "5.0.0", "columns": {"c": 5}},
        "gone": {"first": "1.0.0", "last": "2.0.0", "columns": 5,
                 "platforms_history": {"linux": 5}}}}))
    s = load_schema(odd, index)
    assert s.table("t").since == "5.0.0" and s.removed_table("gone").until == "2.0.0"


def test_missing_schema_file_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        load_schema(tmp_path / "absent.json")


def test_round_trip_through_own_format() -> None:
    from osqsdk.schema._import import schema_document

    s = default_schema()
    again = schema_from_data(json.loads(json.dumps(schema_document(s))))
    assert [t.to_json() for t in again] == [t.to_json() for t in s]
    assert set(again.removed) == set(s.removed)


def test_version_key_orders_releases() -> None:
    assert version_key("5.10.2") > version_key("5.9.1")
    assert version_key("5.23") == version_key("5.23.0")
    assert version_key("v4.0.2-rc1") == (4, 0, 2)


def test_table_exists_in_version() -> None:
    t = TableSchema("t", (ColumnSchema("a"),), since="5.1.0", until="5.4.0")
    assert not t.exists_in("5.0.1") and t.exists_in("5.2.0") and not t.exists_in("5.5.0")
    assert Schema([t]).table("T") is t


@pytest.mark.parametrize("stmt", [
    "import osqsdk.schema",
    "import osqsdk.schema; osqsdk.schema.default_schema()",
])
def test_schema_import_graph_stays_small(stmt: str) -> None:
    code = (f"{stmt}; import sys; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('thrift', 'sqlglot', 'click', 'apsw') or m in ('osqsdk.extension._server', 'osqsdk.extension._wire')];"
            " assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
