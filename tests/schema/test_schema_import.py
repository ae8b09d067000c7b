"""`osqsdk schema import`: every source, the shipped default is reproducible, osqueryi."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from osqsdk.cli import main
from osqsdk.schema import load_schema
from osqsdk.schema._import import parse_osqueryi_schema

REPO = Path(__file__).resolve().parents[2]
SITE = "schema/osquery-site/src/data/osquery_schema_versions/5.23.1.json"


def _without_generated_by(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc.pop("generated_by", None)
    return doc


def test_shipped_default_is_what_import_produces(tmp_path: Path, shared: Path) -> None:
    out = tmp_path / "osquery.json"
    rc = main(["schema", "import", str(shared / SITE),
               "--enrich", str(shared / "schema/osquery_specs_master.json"),
               "--versions", str(shared / "schema/osquery_table_version_index.json"),
               "--osquery-version", "5.23.1", "-o", str(out)])
    assert rc == 0
    assert _without_generated_by(out) == _without_generated_by(REPO / "schema/osquery-5.23.json")


def test_shipped_functions_are_what_import_produces(tmp_path: Path, shared: Path) -> None:
    out = tmp_path / "functions.json"
    assert main(["schema", "import", str(shared / "schema/osquery_sql_functions.json"),
                 "-o", str(out)]) == 0
    assert _without_generated_by(out) == _without_generated_by(REPO / "schema/functions.json")


def test_shipped_fleetd_tables_are_what_import_produces(tmp_path: Path, shared: Path) -> None:
    out = tmp_path / "fleetd.json"
    assert main(["schema", "import", str(shared / "schema/fleet/osquery_fleet_schema.json"),
                 "--without", str(shared / SITE), "--origin", "fleet", "-o", str(out)]) == 0
    assert _without_generated_by(out) == _without_generated_by(REPO / "schema/fleetd.json")


def test_import_keeps_facts_only(tmp_path: Path, shared: Path) -> None:
    out = tmp_path / "s.json"
    assert main(["schema", "import", str(shared / SITE), "-o", str(out)]) == 0
    text = out.read_text()
    site = json.loads((shared / SITE).read_text())
    some_description = next(t["description"] for t in site if len(t["description"]) > 40)
    assert some_description not in text
    assert '"description":' not in text and '"examples":' not in text


def test_import_specs_master_and_extension_spec(tmp_path: Path, shared: Path) -> None:
    spec = tmp_path / "ext.json"
    spec.write_text(json.dumps([{"name": "acme_t", "platforms": ["linux"], "columns": [
        {"name": "a", "type": "text", "required": True}]}]))
    out = tmp_path / "s.json"
    assert main(["schema", "import", str(shared / "schema/osquery_specs_master.json"),
                 str(spec), "--origin", "extension", "-o", str(out)]) == 0
    s = load_schema(out)
    assert s.table("acme_t").column("a").required
    assert s.table("acme_t").origin == "extension"
    assert s.table("yara").name == "yara_file"


def test_import_unreadable_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["schema", "import", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_import_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    spec = tmp_path / "ext.json"
    spec.write_text(json.dumps([{"name": "acme_t", "columns": [{"name": "a"}]}]))
    out = tmp_path / "missing-dir" / "s.json"
    assert main(["schema", "import", str(spec), "-o", str(out)]) == 2
    assert "cannot write" in capsys.readouterr().err and not out.exists()


def test_schema_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "show", "yara"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "yara_file"
    assert main(["schema", "show", "no_such_table"]) == 1


def test_osqueryi_schema_text_is_parsed() -> None:
    # The shape osqueryi's .schema prints: backquoted names, HIDDEN, a PRIMARY KEY of index
    # columns, WITHOUT ROWID.
    text = ("CREATE TABLE acme(`pid` BIGINT, `path` TEXT, `cmdline` TEXT HIDDEN, "
            "`size` UNSIGNED BIGINT, PRIMARY KEY (`pid`)) WITHOUT ROWID;\n"
            "CREATE TABLE plain(`a` INTEGER, `b` DOUBLE);\n")
    tables = {t.name: t for t in parse_osqueryi_schema(text, "linux")}
    acme = tables["acme"]
    assert [c.name for c in acme.columns] == ["pid", "path", "cmdline", "size"]
    assert acme.column("pid").index and not acme.column("path").index
    assert acme.column("cmdline").hidden
    assert acme.column("size").type.value == "UNSIGNED BIGINT"
    assert acme.platforms == ("linux",)
    assert tables["plain"].column("b").type.value == "DOUBLE"


@pytest.mark.skipif(shutil.which("osqueryi") is None, reason="osqueryi is not installed")
def test_import_from_live_osqueryi(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    assert main(["schema", "import", "--osqueryi", "-o", str(out)]) == 0
    s = load_schema(out)
    assert s.table("processes") is not None and s.table("processes").column("pid").index
    assert s.osquery_version


def test_import_runs_an_osqueryi_binary(tmp_path: Path) -> None:
    # A stand-in for a real osqueryi (skipped above when none is installed): a script that
    # answers the two calls the importer makes, the version query and `.schema` on stdin.
    fake = tmp_path / "osqueryi"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *osquery_info*) echo \'[{"version": "5.99.0"}]\' ;;\n'
        "  *) cat >/dev/null; echo 'CREATE TABLE acme(`pid` BIGINT, `cmd` TEXT HIDDEN, "
        "PRIMARY KEY (`pid`)) WITHOUT ROWID;' ;;\n"
        "esac\n")
    fake.chmod(0o755)
    out = tmp_path / "live.json"
    assert main(["schema", "import", "--osqueryi", str(fake), "-o", str(out)]) == 0
    s = load_schema(out)
    assert s.osquery_version == "5.99.0"
    acme = s.table("acme")
    assert acme.column("pid").index and acme.column("cmd").hidden


def test_import_reports_a_failing_osqueryi(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    fake = tmp_path / "osqueryi"
    fake.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    fake.chmod(0o755)
    assert main(["schema", "import", "--osqueryi", str(fake)]) == 2
    assert "boom" in capsys.readouterr().err
