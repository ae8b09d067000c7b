import pytest

from osqsdk import Column, ColumnOptions, ColumnType, PluginDefinitionError


@pytest.mark.parametrize("text, expected", [
    ("TEXT", ColumnType.TEXT), ("text", ColumnType.TEXT), ("UNSIGNED BIGINT", ColumnType.UNSIGNED_BIGINT),
    ("unsigned_bigint", ColumnType.UNSIGNED_BIGINT), ("bigint", ColumnType.BIGINT),
    ("DOUBLE", ColumnType.DOUBLE), ("blob", ColumnType.BLOB), ("Integer", ColumnType.INTEGER),
])
def test_column_type_parses_both_spellings(text, expected):
    assert ColumnType.parse(text) is expected


def test_column_type_spellings_for_routes_and_specs():
    assert ColumnType.UNSIGNED_BIGINT.value == "UNSIGNED BIGINT"
    assert ColumnType.UNSIGNED_BIGINT.spec_name == "unsigned_bigint"
    assert [t.value for t in ColumnType] == ["TEXT", "INTEGER", "BIGINT", "UNSIGNED BIGINT",
                                            "DOUBLE", "BLOB"]


def test_unknown_column_type_is_a_definition_error():
    with pytest.raises(PluginDefinitionError, match="unknown column type 'VARCHAR'"):
        Column("x", "VARCHAR")


@pytest.mark.parametrize("options, bits", [
    ({}, 0), ({"index": True}, 1), ({"required": True}, 2), ({"additional": True}, 4),
    ({"optimized": True}, 8), ({"hidden": True}, 16), ({"collate": "nocase"}, 64),
    ({"index": True, "hidden": True, "collate": "version_rhel"}, 1 | 16 | 2048),
])
def test_column_options_are_osquerys_bitmask(options, bits):
    column = Column("x", "TEXT", **options)
    assert int(column.options) == bits
    assert Column.from_options("x", "TEXT", bits) == column


def test_column_options_are_keyword_only():
    with pytest.raises(TypeError):
        Column("x", "TEXT", True)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a;drop", None])
def test_column_names_must_be_identifiers(name):
    with pytest.raises(PluginDefinitionError):
        Column(name)


def test_column_option_values_match_osquery():
    assert {o.name: o.value for o in ColumnOptions if o.value} == {
        "INDEX": 1, "REQUIRED": 2, "ADDITIONAL": 4, "OPTIMIZED": 8, "HIDDEN": 16,
        "COLLATE_BINARY": 32, "COLLATE_NOCASE": 64, "COLLATE_RTRIM": 128,
        "COLLATE_VERSION": 256, "COLLATE_VERSION_ARCH": 512, "COLLATE_VERSION_DPKG": 1024,
        "COLLATE_VERSION_RHEL": 2048}
