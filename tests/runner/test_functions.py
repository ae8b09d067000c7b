"""osquery's SQL functions and collations in the local runner (osqsdk.runner._functions).

Expected values come from osquery's own tests where they exist:

- ``osquery/sql/tests/sql.cpp`` (encoding, hashing, regex_match, split, regex_split, concat,
  concat_ws, version_compare and the VERSION* collations),
- ``osquery/sql/tests/sqlite_hashing_tests.cpp`` (community_id_v1),
- ``osquery/sql/tests/sqlite_network_tests.cpp`` (in_cidr_block),
- ``docs/wiki/introduction/sql.md`` (math, split, inet_aton, community ID examples).

osquery's test harness prints NULL as "" (``--nullvalue``), so an expected "" there is
NULL here whenever osquery's C++ returns no value (out-of-range index, no arguments).
Other expectations follow osquery's C++ source (and boost/libc++ for the parts it
delegates), as noted on each test.
"""

from __future__ import annotations

import errno
import json
import math
import os
import time
from pathlib import Path

import apsw
import pytest

from osqsdk.runner import _functions

SPEC = Path(__file__).resolve().parents[3] / "shared" / "schema" / "osquery_sql_functions.json"

EDOM = os.strerror(errno.EDOM)  # osquery's platformStrerr(errno) is strerror on POSIX
ERANGE = os.strerror(errno.ERANGE)


@pytest.fixture
def conn() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    _functions.register(connection)
    return connection


def one(conn: apsw.Connection, sql: str, *params: object) -> object:
    rows = conn.execute(sql, params).fetchall()
    assert len(rows) == 1
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def error(conn: apsw.Connection, sql: str, *params: object) -> str:
    with pytest.raises(apsw.SQLError) as caught:
        conn.execute(sql, params).fetchall()
    return str(caught.value)


# --------------------------------------------------------------------------------------
# Registration and arities
# --------------------------------------------------------------------------------------
def _spec_functions() -> dict[str, tuple[int, ...]]:
    spec = json.loads(SPEC.read_text())
    out = {}
    for entry in spec["functions"]:
        nargs = entry["nargs"]
        out[entry["name"]] = tuple(nargs) if isinstance(nargs, list) else (nargs,)
    return out


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/schema is not available")
def test_every_listed_function_is_registered_with_its_arities(conn):
    spec = _spec_functions()
    assert set(_functions.FUNCTIONS) == set(spec)
    for name, arities in spec.items():
        assert sorted(_functions.FUNCTIONS[name]) == sorted(arities), name
    registered = set(conn.execute(
        "SELECT name, narg FROM pragma_function_list WHERE builtin = 0").fetchall())
    for name, arities in spec.items():
        for arity in arities:
            assert (name, arity) in registered, (name, arity)


def test_collations_are_registered(conn):
    names = {row[1] for row in conn.execute("PRAGMA collation_list").fetchall()}
    assert {"VERSION", "VERSION_ARCH", "VERSION_DPKG", "VERSION_RHEL"} <= names


def _wrong_arity_calls() -> list[tuple[str, int]]:
    calls = []
    for name, arities in _functions.FUNCTIONS.items():
        if -1 in arities:
            continue
        for count in (min(arities) - 1, max(arities) + 1):
            if count >= 0 and count not in arities:
                calls.append((name, count))
    return calls


@pytest.mark.parametrize(("name", "count"), _wrong_arity_calls())
def test_unsupported_argument_count_is_sqlites_arity_error(conn, name, count):
    args = ", ".join(["NULL"] * count)
    assert error(conn, f"SELECT {name}({args})") == \
        f"wrong number of arguments to function {name}()"


def test_regexp_operator_is_not_provided_like_osquery(conn):
    # osquery registers no regexp() function (sqlite_util.cpp openOptimized).
    assert "no such function" in error(conn, "SELECT 'abc' REGEXP 'b'").lower()


def test_regexp_operator_on_request():
    connection = apsw.Connection(":memory:")
    _functions.register(connection, regexp=True)
    assert one(connection, "SELECT 'abc' REGEXP 'b', 'abc' REGEXP '^b', NULL REGEXP 'b'") == \
        (1, 0, None)
    assert one(connection, "SELECT 'a' || char(13) REGEXP 'a.'") == 0  # ECMAScript '.'
    assert error(connection, "SELECT 'abc' REGEXP '(b'") == "Invalid regex"


@pytest.mark.parametrize("name", ["ln", "log2", "pow", "mod", "trunc", "atan2", "sinh",
                                  "ceiling"])
def test_sqlite_only_math_builtins_are_unavailable(conn, name):
    # osquery's SQLite has no SQLITE_ENABLE_MATH_FUNCTIONS (osquery_sql_functions.json).
    args = "1, 2" if name in ("pow", "mod", "atan2") else "1"
    assert error(conn, f"SELECT {name}({args})") == f"no such function: {name}"


def test_two_argument_log_is_unavailable(conn):
    assert error(conn, "SELECT log(2, 8)") == "wrong number of arguments to function log()"


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------
def test_base64_osquery_tests(conn):
    # sql.cpp test_sql_base64_encode / _decode / _conditional_encode
    assert one(conn, "SELECT to_base64('test')") == "dGVzdA=="
    assert one(conn, "SELECT from_base64('dGVzdA==')") == "test"
    assert one(conn, "SELECT conditional_to_base64('test')") == "test"
    assert one(conn, "SELECT conditional_to_base64('悪因悪果')") == "5oKq5Zug5oKq5p6c"


def test_base64_nulls_and_types(conn):
    assert one(conn, "SELECT to_base64(NULL), from_base64(NULL), "
                     "conditional_to_base64(NULL)") == (None, None, None)
    assert one(conn, "SELECT to_base64('')") == ""
    assert one(conn, "SELECT to_base64(123)") == "MTIz"  # the text '123'
    # the whole value, embedded NUL included (sqlite3_value_bytes)
    assert one(conn, "SELECT to_base64('a' || char(0) || 'b')") == "YQBi"
    # a control character is not printable → encoded
    assert one(conn, "SELECT conditional_to_base64('a' || char(9))") == "YQk="


def test_from_base64_follows_boost_decoding(conn):
    # osquery/utils/base64.cpp: CR LF / LF removed, trailing '=' trimmed, any other
    # non-alphabet byte → "" ; boost's table reads an inner '=' as zero bits.
    assert one(conn, "SELECT from_base64('dGVzdA')") == "test"
    assert one(conn, "SELECT from_base64('dGVz' || char(13, 10) || 'dA==')") == "test"
    assert one(conn, "SELECT from_base64('dGVz dA==')") == ""
    assert one(conn, "SELECT from_base64('!!!!')") == ""
    assert one(conn, "SELECT from_base64('Q')") == ""  # a lone 6-bit group
    assert one(conn, "SELECT from_base64('QQ')") == "A"
    assert one(conn, "SELECT from_base64('dGVzdA=x')") == "test\x001"
    assert one(conn, "SELECT from_base64('====')") == ""


def test_from_base64_binary_result_is_a_blob(conn):
    # Python str cannot carry invalid UTF-8: the bytes come back as a BLOB.
    assert one(conn, "SELECT from_base64('/w==')") == b"\xff"


# --------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------
def test_hashes_osquery_tests(conn):
    # sql.cpp test_sql_md5 / test_sql_sha1 / test_sql_sha256
    assert one(conn, "SELECT md5('test')") == "098f6bcd4621d373cade4e832627b4f6"
    assert one(conn, "SELECT sha1('test')") == "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
    assert one(conn, "SELECT sha256('test')") == \
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_hashes_docs_example(conn):
    # sql.md "Hashing functions": sha1 of the username Guest (the md5/sha256 sample
    # values there belong to other inputs)
    assert one(conn, "SELECT sha1('Guest')") == "face83ee3014bdc8f98203cc94e2e89222452e90"


def test_hashes_of_null_numbers_and_nul(conn):
    assert one(conn, "SELECT md5(NULL), sha1(NULL), sha256(NULL)") == (None, None, None)
    assert one(conn, "SELECT md5(123) = md5('123')") == 1
    assert one(conn, "SELECT md5(1.5) = md5('1.5')") == 1
    # hashed up to strlen(): an embedded NUL ends the input
    assert one(conn, "SELECT md5('a' || char(0) || 'b') = md5('a')") == 1


# --------------------------------------------------------------------------------------
# community_id_v1
# --------------------------------------------------------------------------------------
COMMUNITY_VECTORS = [
    # sqlite_hashing_tests.cpp test_community_id_v1_tcp / _sctp / _udp
    ("'66.35.250.204', '128.232.110.120', 80, 34855, 6, 0", "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("'128.232.110.120', '66.35.250.204', 34855, 80, 6", "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("'66.35.250.204', '128.232.110.120', 80, 34855, 6, 1", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    ("'128.232.110.120', '66.35.250.204', 34855, 80, 6, 1", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    ("'127.0.0.1', 'fe80::14b0:de4a:f8e8:522f', 64, 10, 6", "1:Jww+Ua4pSUNl9TvSUwvSHL4n93w="),
    ("'fe80::14b0:de4a:f8e8:522f', '127.0.0.1', 10, 64, 6, 0", "1:Jww+Ua4pSUNl9TvSUwvSHL4n93w="),
    ("'192.168.170.8', '192.168.170.56', 7, 80, 132, 0", "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="),
    ("'192.168.170.56', '192.168.170.8', 80, 7, 132, 0", "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="),
    ("'192.168.170.8', '192.168.170.56', 7, 80, 132, 1", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="),
    ("'192.168.170.56', '192.168.170.8', 80, 7, 132, 1", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="),
    ("'192.168.1.52', '8.8.8.8', 54585, 53, 17, 0", "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    ("'8.8.8.8', '192.168.1.52', 53, 54585, 17, 0", "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    ("'192.168.1.52', '8.8.8.8', 54585, 53, 17, 1", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    ("'8.8.8.8', '192.168.1.52', 53, 54585, 17, 1", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    # sql.md "Community ID v1 Example"
    ("'66.35.250.204', '2001:0:3238:DFE1:63::FEFB', 80, 2347, 6", "1:rxU6O+b2d9kbSWjRmVDoBbowx6g="),
    ("'66.35.250.204', '2001:0:3238:DFE1:63::FEFB', 80, 2347, 6, 37",
     "1:jmJ2ORP31di4mtsQPIKzyoEb3yo="),
]


@pytest.mark.parametrize(("args", "expected"), COMMUNITY_VECTORS)
def test_community_id_vectors(conn, args, expected):
    assert one(conn, f"SELECT community_id_v1({args})") == expected
    assert one(conn, f"SELECT community_id_v1_strict({args})") == expected


COMMUNITY_ERRORS = [
    # sqlite_hashing_tests.cpp test_community_id_v1_strict / _nulls, then each check of
    # sqlite_hashing.cpp in order.
    ("'192.168.1.52', 'foo', 10, 53, 17, 0", "Community ID daddr cannot be parsed as IP"),
    ("'192.168.1.52', '192.168.1.1', 10, 53, 17, 100000000",
     "Community ID seed must fit in 2 bytes"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, 17, 32768", "Community ID seed must fit in 2 bytes"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, 17, -32769", "Community ID seed must fit in 2 bytes"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, 17, '1'", "Community ID seed must be an integer"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, 17, NULL", "Community ID seed must be an integer"),
    ("NULL, '2.2.2.2', 10, 53, 17", "Community ID IPs must be strings"),
    ("'1.1.1.1', 33686018, 10, 53, 17", "Community ID IPs must be strings"),
    ("'1.1.1', '2.2.2.2', 10, 53, 17", "Community ID saddr cannot be parsed as IP"),
    ("'1.1.1.1', '2.2.2.2', '10', 53, 17", "Community ID ports must be integers"),
    ("'1.1.1.1', '2.2.2.2', 10, 53.0, 17", "Community ID ports must be integers"),
    ("'1.1.1.1', '2.2.2.2', 65536, 53, 17", "Community ID ports must fit in 2 bytes"),
    ("'1.1.1.1', '2.2.2.2', 10, -1, 17", "Community ID ports must fit in 2 bytes"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, NULL", "Community ID protocol must be an integer"),
    ("'1.1.1.1', '2.2.2.2', 10, 53, 256", "Community ID protocol must fit in 1 byte"),
]


@pytest.mark.parametrize(("args", "message"), COMMUNITY_ERRORS)
def test_community_id_invalid_input(conn, args, message):
    assert one(conn, f"SELECT community_id_v1({args})") is None
    assert error(conn, f"SELECT community_id_v1_strict({args})") == message


def test_community_id_seed_is_a_signed_16_bit_value(conn):
    # big_int16_buf_t: the full int16 range is accepted and encoded in two's complement.
    low = one(conn, "SELECT community_id_v1('1.1.1.1', '2.2.2.2', 1, 2, 6, -32768)")
    minus_one = one(conn, "SELECT community_id_v1('1.1.1.1', '2.2.2.2', 1, 2, 6, -1)")
    zero = one(conn, "SELECT community_id_v1('1.1.1.1', '2.2.2.2', 1, 2, 6, 0)")
    assert low.startswith("1:") and minus_one.startswith("1:")
    assert len({low, minus_one, zero}) == 3


def test_community_id_orders_equal_addresses_by_port(conn):
    forward = one(conn, "SELECT community_id_v1('10.0.0.1', '10.0.0.1', 1000, 22, 6)")
    backward = one(conn, "SELECT community_id_v1('10.0.0.1', '10.0.0.1', 22, 1000, 6)")
    assert forward == backward
    other = one(conn, "SELECT community_id_v1('10.0.0.1', '10.0.0.1', 22, 1001, 6)")
    assert other != forward


# --------------------------------------------------------------------------------------
# in_cidr_block
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cidr", "ip"), [
    # sqlite_network_tests.cpp test_in_cidr_block, sql.md examples
    ("10.0.0.0/26", "10.0.0.24"),
    ("198.51.100.14/24", "198.51.100.14"),
    ("2a00:a040:019e:f12a:0000:0000:0000:0000/64", "2a00:a040:19e:f12a:658b:3589:b2ba:71a3"),
    ("2001:db8::/48", "2001:db8:0:ffff:ffff:ffff:ffff:ffff"),
])
def test_in_cidr_block_osquery_tests(conn, cidr, ip):
    assert one(conn, "SELECT in_cidr_block(?, ?)", cidr, ip) == 1


@pytest.mark.parametrize(("cidr", "ip", "expected"), [
    ("10.0.0.0/26", "10.0.0.64", 0),
    ("10.0.0.0/26", "11.0.0.1", 0),
    ("2001:db8::/48", "2001:db9::1", 0),
    # boost::asio network_v4::hosts() = [network + 1, broadcast): the network and the
    # broadcast addresses are not members, and a /31 has none.
    ("10.0.0.0/24", "10.0.0.0", 0),
    ("10.0.0.0/24", "10.0.0.255", 0),
    ("10.0.0.0/24", "10.0.0.254", 1),
    ("10.0.0.0/31", "10.0.0.0", 0),
    ("10.0.0.0/31", "10.0.0.1", 0),
    # a /32 is the address alone; its end bound (address + 1) wraps for 255.255.255.255
    ("10.0.0.7/32", "10.0.0.7", 1),
    ("255.255.255.255/32", "255.255.255.255", 0),
    ("0.0.0.0/0", "8.8.8.8", 1),
    # network_v6::hosts() spans the whole network, but its end (last + 1) wraps to ::
    # when the last address is ffff:...:ffff.
    ("2001:db8::/48", "2001:db8::", 1),
    ("::/0", "::1", 0),
    ("ffff::/16", "ffff::1", 0),
])
def test_in_cidr_block_follows_boost_ranges(conn, cidr, ip, expected):
    assert one(conn, "SELECT in_cidr_block(?, ?)", cidr, ip) == expected


@pytest.mark.parametrize(("args", "message"), [
    ("NULL, '10.0.0.1'", "CIDR must be a string"),
    ("167772160, '10.0.0.1'", "CIDR must be a string"),
    ("'10.0.0.0/8', NULL", "IP address must be a string"),
    ("'10.0.0.0/8', 167772161", "IP address must be a string"),
    ("'10.0.0.0/8', 'foo'", "IP address cannot be parsed"),
    ("'10.0.0.0/8', '10.0.0.1/32'", "IP address cannot be parsed"),
    ("'10.0.0.0', '10.0.0.1'", "CIDR for IP address v4 cannot be parsed"),
    ("'10.0.0.0/', '10.0.0.1'", "CIDR for IP address v4 cannot be parsed"),
    ("'10.0.0.0/33', '10.0.0.1'", "CIDR for IP address v4 cannot be parsed"),
    ("'10.0.0.0/8a', '10.0.0.1'", "CIDR for IP address v4 cannot be parsed"),
    ("'2001:db8::/32', '10.0.0.1'", "CIDR for IP address v4 cannot be parsed"),
    ("'10.0.0.0/8', '::1'", "CIDR for IP address v6 cannot be parsed"),
    ("'::/129', '::1'", "CIDR for IP address v6 cannot be parsed"),
])
def test_in_cidr_block_errors(conn, args, message):
    assert error(conn, f"SELECT in_cidr_block({args})") == message


# --------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------
def test_split_osquery_tests(conn):
    # sql.cpp test_split_slash / test_split_double_semicolon (t2 "" is NULL: out of range)
    assert one(conn, "SELECT split('/foo/bar', '/', 0), split('/foo/bar', '/', 1), "
                     "split('/foo/bar', '/', 2)") == ("foo", "bar", None)
    assert one(conn, "SELECT split('foo;;bar', ';;', 0), split('foo;;bar', ';;', 1), "
                     "split('foo;;bar', ';;', 2)") == ("foo", "bar", None)
    # test_split_empty: an empty token is an error
    assert error(conn, "SELECT split('foo;;bar', '', 0)") == "Invalid input to split function"


def test_split_docs_examples(conn):
    # sqlite_string.cpp comment and sql.md: every token character splits
    assert one(conn, "SELECT split('192.168.0.1', '.', 1)") == "168"
    assert one(conn, "SELECT split('192.168.0.1', '.0', 0)") == "192"
    assert one(conn, "SELECT split(500, 1, 0), split(1001, 1, 0)") == ("500", "00")


def test_split_trims_and_drops_empty_pieces(conn):
    # osquery::split: empty pieces are dropped before each piece is trimmed
    assert one(conn, "SELECT split('a , b', ',', 1)") == "b"
    assert one(conn, "SELECT split(' a ,  , b', ',', 1)") == ""
    assert one(conn, "SELECT split(' a ,  , b', ',', 2)") == "b"
    assert one(conn, "SELECT split('', ',', 0)") is None


def test_split_null_and_index_handling(conn):
    assert one(conn, "SELECT split(NULL, ',', 0), split('a', NULL, 0), split('a', ',', NULL)") \
        == (None, None, None)
    assert one(conn, "SELECT split('a,b', ',', -1)") is None  # size_t(-1) is out of range
    assert one(conn, "SELECT split('a,b', ',', '1')") == "b"  # sqlite3_value_int('1')
    assert one(conn, "SELECT split('a,b', ',', 1.9)") == "b"


# --------------------------------------------------------------------------------------
# regex_split
# --------------------------------------------------------------------------------------
def test_regex_split_osquery_tests(conn):
    # sql.cpp test_regex_split_* ("" for an index past the pieces is NULL)
    assert one(conn, "SELECT regex_split('/foo/bar', '/', 0), regex_split('/foo/bar', '/', 1), "
                     "regex_split('/foo/bar', '/', 2), regex_split('/foo/bar', '/', 3)") == \
        ("", "foo", "bar", None)
    assert one(conn, "SELECT regex_split('foo;;bar', ';;', 0), "
                     "regex_split('foo;;bar', ';;', 1), regex_split('foo;;bar', ';;', 2)") == \
        ("foo", "bar", None)
    assert one(conn, "SELECT regex_split('foo;bar//qux', '(;|/)+', 0), "
                     "regex_split('foo;bar//qux', '(;|/)+', 1), "
                     "regex_split('foo;bar//qux', '(;|/)+', 2), "
                     "regex_split('foo;bar//qux', '(;|/)+', 3)") == ("foo", "bar", "qux", None)
    assert one(conn, "SELECT regex_split('/filesystem/path/download.extension.zip', "
                     "'(.*/)|(.extension.zip)', 1)") == "download"
    assert one(conn, "SELECT regex_split('foo/bar', '|', 0)") == ""


def test_regex_split_errors(conn):
    # sql.cpp test_regex_split_empty / _invalid1 / _invalid2 / _too_big
    assert error(conn, "SELECT regex_split('foo/bar', '', 0)") == \
        "Invalid input to split function"
    assert error(conn, "SELECT regex_split('foo/bar', '(/', 0)") == "Invalid regex"
    assert error(conn, "SELECT regex_split('foo/bar', '+', 0)") == "Invalid regex"
    assert error(conn, "SELECT regex_split('foo/bar', ?, 0)", "|" * 100000) == "Invalid regex"
    # --regex_max_size (256 bytes): 256 is allowed, 257 is not
    assert one(conn, "SELECT regex_split('foo/bar', ?, 1)", "/" + "x?" * 127 + "b") == "ar"
    assert error(conn, "SELECT regex_split('foo/bar', ?, 0)", "/" * 257) == "Invalid regex"


def test_regex_split_token_iterator_edges(conn):
    # std::sregex_token_iterator(-1): no match yields the whole input (even ''), a
    # trailing empty piece is never produced, a leading one is.
    assert one(conn, "SELECT regex_split('abc', 'x', 0), regex_split('abc', 'x', 1)") == \
        ("abc", None)
    assert one(conn, "SELECT regex_split('', 'x', 0)") == ""
    assert one(conn, "SELECT regex_split('a,b,', ',', 1), regex_split('a,b,', ',', 2)") == \
        ("b", None)
    assert one(conn, "SELECT regex_split(',a', ',', 0)") == ""
    assert one(conn, "SELECT regex_split(NULL, ',', 0)") is None
    assert one(conn, "SELECT regex_split('a,b', ',', -1)") is None


# --------------------------------------------------------------------------------------
# regex_match
# --------------------------------------------------------------------------------------
def test_regex_match_osquery_tests(conn):
    # sql.cpp test_regex_match_* (an index past the groups is NULL)
    assert one(conn, "SELECT regex_match('hello world', '(l)(o).*', 0), "
                     "regex_match('hello world', '(l)(o).*', 1), "
                     "regex_match('hello world', '(l)(o).*', 2), "
                     "regex_match('hello world', '(l)(o).*', 3)") == ("lo world", "l", "o", None)
    assert one(conn, r"SELECT regex_match('hello world', '(\w+) .*(or|ld)', 0), "
                     r"regex_match('hello world', '(\w+) .*(or|ld)', 1), "
                     r"regex_match('hello world', '(\w+) .*(or|ld)', 2), "
                     r"regex_match('hello world', '(\w+) .*(or|ld)', 3)") == \
        ("hello world", "hello", "ld", None)
    assert one(conn, "SELECT regex_match('/filesystem/path/download.extension.zip', "
                     "'.+/([^./]+)', 1)") == "download"
    assert one(conn, "SELECT regex_match('hello world', '', 0)") == ""
    assert one(conn, "SELECT regex_match('foo/bar', '|', 0)") == ""
    assert one(conn, "SELECT regex_match('hello world', 'no match', 0)") is None


def test_regex_match_docs_example(conn):
    # sql.md regex_match example
    assert one(conn, r"SELECT regex_match('hello world. Goodbye', '(\w+) \w+', 0), "
                     r"regex_match('hello world. Goodbye', '(\w+) \w+', 1)") == \
        ("hello world", "hello")


def test_regex_match_errors(conn):
    # sql.cpp test_regex_match_invalid1 / _invalid2 / _too_big
    assert error(conn, "SELECT regex_match('foo/bar', '(/', 0)") == "Invalid regex"
    assert error(conn, "SELECT regex_match('foo/bar', '+', 0)") == "Invalid regex"
    assert error(conn, "SELECT regex_match('foo/bar', ?, 0)", "|" * 100000) == \
        "Invalid regex: too big, max size is 256 bytes"
    assert one(conn, "SELECT regex_match('foo/bar', ?, 0)", "foo" + "|" * 253) == "foo"
    assert error(conn, "SELECT regex_match('foo/bar', ?, 0)", "|" * 257).startswith(
        "Invalid regex: too big")


def test_regex_match_nulls_and_groups(conn):
    assert one(conn, "SELECT regex_match(NULL, 'a', 0), regex_match('a', NULL, 0), "
                     "regex_match('a', 'a', NULL)") == (None, None, None)
    assert one(conn, "SELECT regex_match('abc', 'b', -1)") is None
    # a group that took no part in the match is '' (std::sub_match::str())
    assert one(conn, "SELECT regex_match('b', '(a)|b', 1)") == ""
    assert one(conn, "SELECT regex_match(12345, '3(4)', 1)") == "4"


@pytest.mark.parametrize(("text", "pattern", "expected"), [
    # ECMAScript '.' excludes CR as well as LF
    ("'a' || char(13) || 'b'", "a.b", None),
    ("'a' || char(10) || 'b'", "a.b", None),
    ("'axb'", "a.b", "axb"),
    # ECMAScript '$' is the end of input only (Python's also matches before a final LF)
    ("'abc' || char(10)", "c$", None),
    ("'abc'", "c$", "c"),
    # character classes work on bytes in the C locale: no Unicode letters
    ("'é'", r"\w", None),
    ("'ab123'", "[[:digit:]]+", "123"),
    ("'ab_12'", "[[:alpha:]_]+", "ab_"),
    # \0 is NUL even before a digit (Python would read \01 as octal 1)
    ("'a' || char(1)", r"a\01?", None),
    ("'tab' || char(9)", r"\cI", "\t"),
    ("'xAy'", r"\u0041", "A"),
    ("'xAy'", r"\u0141", "A"),  # std::regex<char> keeps the low byte
    ("'abab'", r"(ab)\1", "abab"),
    ("'a.b'", r"a\.b", "a.b"),
    ("'xy'", "[]x", None),  # [] is an empty class in ECMAScript
    ("'xy'", "[^]", "x"),
    ("'aaa'", "a{2}", "aa"),
    ("'aaa'", "a+?", "a"),
    ("'ab'", "a(?=b)", "a"),
])
def test_regex_match_ecmascript_dialect(conn, text, pattern, expected):
    assert one(conn, f"SELECT regex_match({text}, ?, 0)", pattern) == expected


@pytest.mark.parametrize("pattern", [
    # Python-only syntax
    "(?P<name>a)", "(?<=a)b", "(?i)a", "(?#note)a", "a*+", "a++", "a{,2}",
    # escaped letters without an ECMAScript meaning, and bare ] { }
    r"\Aa", r"a\Z", r"\e", r"\_", "a]", "{", "a{", "a}",
    # unbalanced or incomplete
    "[a", "a\\", "(a", "a)", r"\x4", "[[:nosuch:]]",
    # assertions cannot be repeated
    "^*", r"\b+", "(?=a)*",
])
def test_regex_match_rejects_what_std_regex_rejects(conn, pattern):
    assert error(conn, "SELECT regex_match('aaa', ?, 0)", pattern) == "Invalid regex"


# --------------------------------------------------------------------------------------
# inet_aton
# --------------------------------------------------------------------------------------
def test_inet_aton(conn):
    assert one(conn, "SELECT inet_aton('1.0.1.5')") == 16777477  # sql.md example
    assert one(conn, "SELECT inet_aton('255.255.255.255'), typeof(inet_aton('0.0.0.1'))") == \
        (4294967295, "integer")
    for value in ("'::1'", "'1.2.3'", "'01.2.3.4'", "' 1.2.3.4'", "NULL", "16777477"):
        assert one(conn, f"SELECT inet_aton({value})") is None, value


# --------------------------------------------------------------------------------------
# concat / concat_ws
# --------------------------------------------------------------------------------------
def test_concat_osquery_tests(conn):
    # sql.cpp test_concat (t0 "" is NULL: no arguments sets no result)
    assert one(conn, "SELECT concat(), concat('hello'), concat('hello', 'world'), "
                     "concat('hello', NULL, 'world'), concat(1, 2, 3, 'go'), concat('')") == \
        (None, "hello", "helloworld", "helloworld", "123go", "")


def test_concat_ws_osquery_tests(conn):
    # sql.cpp test_concat_ws (t0/t1 "" are NULL: nothing to join)
    assert one(conn, "SELECT concat_ws(''), concat_ws(NULL), "
                     "concat_ws(', ', 'hello', 'world', 1, 2, 3), "
                     "concat_ws('', 'hello', 'world', 1, 2, 3), "
                     "concat_ws(NULL, 'hello', 'world', 1, 2, 3), "
                     "concat_ws(' ', 'hello', NULL, 'world'), concat_ws('x', 'hello'), "
                     "concat_ws('x', '', '')") == \
        (None, None, "hello, world, 1, 2, 3", "helloworld123", "helloworld123", "hello world",
         "hello", "x")
    # test_concat_ws_fail
    assert error(conn, "SELECT concat_ws()") == "Missing separator to concat_ws"


def test_concat_ws_keeps_the_separator_before_a_trailing_null(conn):
    # concatFunc writes the separator after a value unless it is the last argument
    assert one(conn, "SELECT concat_ws(',', 'a', NULL)") == "a,"
    assert one(conn, "SELECT concat_ws(',', NULL, 'a')") == "a"


def test_numbers_become_text_like_osquerys_sqlite(conn):
    # SQLite 3.42 (osquery's) renders REAL with "%!.15g"
    assert one(conn, "SELECT concat(0.1), concat(2.0), concat(1.0 / 3), concat(1e20)") == \
        ("0.1", "2.0", "0.333333333333333", "1.0e+20")
    assert one(conn, "SELECT concat(-5, 7)") == "-57"


# --------------------------------------------------------------------------------------
# version_compare and the VERSION collations
# --------------------------------------------------------------------------------------
def test_version_compare_osquery_tests(conn):
    # sql.cpp test_version_compare
    assert one(conn, """SELECT version_compare('1.0', '1.0'),
        version_compare('1:2.0-10', '1:2.0-10', 'DPKG'),
        version_compare('4:1.1.0', '4:1.1.0-3', 'arCH'),
        version_compare('50.4.1b', '50.4.1c'),
        version_compare('1.0.8-4', '1.0.8-6', 'arch'),
        version_compare('1.0.0~rc2^2021', '1.0.0', 'RHEL'),
        version_compare('1.1.0~BETA2^1', '1.1.0~CR1', 'RhEl'),
        version_compare('1.0.1.1', '1.0.1^2021', 'rhel'),
        version_compare('1.9.9-1ubuntu2.4', '1.9.9-1ubuntu2.3', 'dpkg'),
        version_compare('1:1.2.13-2', '4.2.1', 'ARCH'),
        version_compare('106.32.1', '106:32.1')""") == (0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 0)


def test_version_compare_is_clamped_and_handles_empty(conn):
    assert one(conn, "SELECT version_compare('1.9', '1.1'), version_compare('1.1', '1.9')") == \
        (1, -1)
    assert one(conn, "SELECT version_compare('', ''), version_compare('', '1'), "
                     "version_compare('1', '')") == (0, -1, 1)
    assert one(conn, "SELECT version_compare('10.0', '9.0'), version_compare('1.10', '1.9')") \
        == (1, 1)


@pytest.mark.parametrize(("left", "right", "generic", "arch", "dpkg", "rhel"), [
    # epoch (all package flavours): a version with an epoch sorts above one without
    ("2:1.0", "10.0", -1, 1, 1, 1),
    # delimiter precedence (DPKG, RHEL): ~ < - < ^ < . < :
    ("1.0~1", "1.0-1", 0, 0, -1, -1),
    ("1.0^1", "1.0.1", 0, 0, -1, -1),
    # compare remaining (ARCH, RHEL): a trailing ~ sorts lower, ^ higher, - equal
    ("1.0", "1.0~rc1", -1, 1, -1, 1),
    ("1.0", "1.0^1", -1, -1, -1, -1),
    ("1.0", "1.0-1", -1, 0, -1, 0),
])
def test_version_compare_flavour_options(conn, left, right, generic, arch, dpkg, rhel):
    # the option sets of versionCollate/ARCH/DPKG/RHEL in sqlite_version.cpp
    assert one(conn, "SELECT version_compare(?, ?), version_compare(?, ?, 'ARCH'), "
                     "version_compare(?, ?, 'DPKG'), version_compare(?, ?, 'RHEL')",
               left, right, left, right, left, right, left, right) == (generic, arch, dpkg, rhel)
    for collation, expected in (("VERSION", generic), ("VERSION_ARCH", arch),
                                ("VERSION_DPKG", dpkg), ("VERSION_RHEL", rhel)):
        assert one(conn, f"SELECT (? > ? COLLATE {collation}) - (? < ? COLLATE {collation})",
                   left, right, left, right) == expected, collation


@pytest.mark.parametrize(("args", "message"), [
    ("", "Must provide two version strings to compare."),
    ("'1.0'", "Must provide two version strings to compare."),
    ("'1.0', 1", "Must provide two version strings to compare."),
    ("NULL, '1.0'", "Must provide two version strings to compare."),
    ("'1.0', '1.1', 1", "The optional third parameter is not a string."),
    ("'1.0', '1.1', 'rpm'",
     "The optional third parameter does not match one of: (ARCH, DPKG, RHEL)."),
])
def test_version_compare_errors(conn, args, message):
    assert error(conn, f"SELECT version_compare({args})") == message


COLLATION_CASES = {
    # sql.cpp test_collate_version_eq / _lt / _gt
    "version": [
        "'1.0' = '1.0'", "'1:0.0' = '1.0.0'", "'2.50^1a' = '2.50~1a'",
        "'1.0' < '1.1'", "'1.1' < '1.a'", "'50.4.1b' < '50.4.1c'", "'1.0.0' < '1.0.0-2'",
        "'1.0.0-2' < '1:0.0.3'", "'1.12.1' < '1.13'",
        "'1.1' > '1.0'", "'190.10a' > '20.10a'", "'20.10a' > '20.102'", "'57:4' > '6.87.5'",
        "'98.100.21-1b' > '98.100.21-1a'", "'8.11' > '8.10.24'",
    ],
    # sql.cpp test_collate_version_arch_*
    "version_arch": [
        "'1.0' = '1.0'", "'1.0' = '1.0-4'", "'4:2' = '4:2-1'",
        "'1.0' < '1.1'", "'1.6.1-9' < '1.6.1-10'", "'20220713-1' < '20221123-1'",
        "'2-2pre' < '2-2rc'", "'2.38-6' < '2.39-4'", "'1.0.8-4' < '1.0.8-5'",
        "'20210603-1' < '20220905-1'", "'41.1-2' < '43alpha+r8+g1de47dbc-1'",
        "'9.1-1' < '9.1-3'", "'1:42.3.1-1' < '1:43.2-1'", "'42.3-1' < '43.2-1'",
        "'1.1' > '1.0'", "'3.46.7-1' > '3.44.1-1'", "'6.0.12.arch1-1' > '5.18.14.arch1-1'",
        "'5.6.0-2' > '5.3.0-2'", "'6.0.2-5' > '6.0.1-5'",
        "'3:0.164.r3095.baee400-4' > '3:0.164.r3081.19856cc-2'", "'2022.2-1' > '2022.1-1'",
        "'5.2.9-1' > '5.2.5-3'", "'42.2-1' > '42.1-2'", "'0.23.90-1' > '0.23.1-9'",
        "'1:1.2.13-2' > '4.2.1'",
    ],
    # sql.cpp test_collate_version_dpkg_*
    "version_dpkg": [
        "'1.0' = '1.0'", "'1.0-0' = '1.0-0'", "'1:2.0-10' = '1:2.0-10'",
        "'1.0' < '1.1'", "'22.07.5-2ubuntu1.3' < '22.07.5-2ubuntu1.4'",
        "'12ubuntu4.2' < '12ubuntu4.3'", "'2.38-4ubuntu2.1' < '2.38-4ubuntu2.2'",
        "'1.19.2-2ubuntu0.1' < '1.19.2-2ubuntu0.2'",
        "'2.5.13+dfsg-0ubuntu0.22.04.1' < '2.5.14+dfsg-0ubuntu0.22.04.2'",
        "'1.1' > '1.0'", "'1.21.1ubuntu2.2' > '1.21.1ubuntu2.1'",
        "'3.0.2-0ubuntu1.10' > '3.0.2-0ubuntu1.8'", "'5.34.0-3ubuntu1.2' > '5.34.0-3ubuntu1.1'",
        "'1.9.9-1ubuntu2.4' > '1.9.9-1ubuntu2.3'",
        "'2:8.2.3995-1ubuntu2.9' > '2:8.2.3995-1ubuntu2.3'",
    ],
    # sql.cpp test_collate_version_rhel_*
    "version_rhel": [
        "'1.0' = '1.0'", "'0.5.0~rc1^202' = '0.5.0~rc1^202'", "'1:1.0.0~rc2' = '1:1.0.0~rc2'",
        "'1.0' < '1.1'", "'1.0.0~rc2^2021' < '1.0.0'", "'1.0.0' < '1.0.1'",
        "'1.0.1' < '1.0.1^2021'", "'1.0.1^2021' < '1.0.1.security1'",
        "'1.0.1' < 'pkg-1.0.1.security1'", "'1.1.0~BETA2' < '1.1.0~CR1'",
        "'1.1.0.2021.SP1' < '1.1.0.2021.SP1_CP1'",
        "'9.11.4-26.P2.el7_9.10' < '32:9.11.4-26.P2.el7_9.13'",
        "'1:1.8.0.352.b08-2.el7_9' < '1:1.8.0.372.b07-1.el7_9'",
        "'5.6.0-1.linux' < '5.9.1-1.linux'",
        "'1.1' > '1.0'", "'1.0.0~rc2' > '1.0.0~rc1'", "'1.0.0' > '1.0.0~rc2'",
        "'1.0.1.security1' > '1.0.0~rc2'", "'1.1.0~BETA' > '1.0.1.security1'",
        "'1.1.0~CR1' > '1.1.0~BETA'", "'1.1.0.20201001.GA1' > '1.1.0~CR1'",
        "'1.0.0~rc2^20210101gf00fabd' > '1.0.0~rc2'", "'1.0.0' > '1.0.0~rc2^20210101gf00fabd'",
        "'1.0.1^20210203gbbbccc0' > '1.0.1'", "'1.0.1.security1' > '1.0.1^20210203gbbbccc0'",
    ],
}


@pytest.mark.parametrize(("collation", "comparison"), [
    (collation, comparison) for collation, cases in COLLATION_CASES.items()
    for comparison in cases])
def test_version_collations_osquery_tests(conn, collation, comparison):
    assert one(conn, f"SELECT {comparison} COLLATE {collation}") == 1


def test_version_collations_differ_from_binary(conn):
    # the same comparisons are false with SQLite's default BINARY collation
    assert one(conn, "SELECT '1.12.1' < '1.13', '190.10a' > '20.10a'") == (1, 0)
    assert one(conn, "SELECT '1.0' = '1.0-4' COLLATE version") == 0
    assert one(conn, "SELECT '1.0' = '1.0-4' COLLATE VERSION_ARCH") == 1


def test_version_collation_on_a_column(conn):
    conn.execute("CREATE TABLE pkgs(version TEXT COLLATE VERSION)")
    conn.execute("INSERT INTO pkgs VALUES ('1.10'), ('1.9'), ('1.2'), ('1.10.1')")
    assert [row[0] for row in conn.execute("SELECT version FROM pkgs ORDER BY version")] == \
        ["1.2", "1.9", "1.10", "1.10.1"]
    assert [row[0] for row in conn.execute(
        "SELECT version FROM pkgs WHERE version > '1.9' ORDER BY version")] == \
        ["1.10", "1.10.1"]


# --------------------------------------------------------------------------------------
# Math
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "expected"), [
    # sql.md "Math functions" / "Trig functions" examples
    ("sqrt(107372805120)", 327677.898430761),
    ("log(107372805120)", 25.3995727757846),
    ("log10(107372805120)", 11.0308942992233),
    ("pi() * 107372805120", 337321615760.32),
    ("sin(30)", -0.988031624092862),
    ("cos(30)", 0.154251449887584),
    ("tan(30)", -6.40533119664628),
    ("cot(30)", -0.156119952161659),
    ("asin(.5)", 0.523598775598299),
    ("acos(.5)", 1.0471975511966),
    ("atan(.5)", 0.463647609000806),
    ("radians(60)", 1.0471975511966),
    ("degrees(1.3)", 74.484513367007),
    ("exp(1)", math.e),
    ("power(2, 10)", 1024.0),
    ("pi()", math.pi),
])
def test_math_values(conn, sql, expected):
    value = one(conn, f"SELECT {sql}")
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


def test_log_is_natural_not_sqlites_base_10(conn):
    assert one(conn, "SELECT log(100)") == pytest.approx(math.log(100))
    assert one(conn, "SELECT log(100)") != pytest.approx(2.0)


def test_ceil_floor_return_integers(conn):
    assert one(conn, "SELECT ceil(1.2), typeof(ceil(1.2)), floor(-1.5), typeof(floor(-1.5))") \
        == (2, "integer", -2, "integer")
    assert one(conn, "SELECT ceil(5), floor(9223372036854775807)") == (5, 9223372036854775807)
    assert one(conn, "SELECT ceil('1.5'), floor('abc'), ceil(NULL)") == (2, 0, None)
    # (int64_t) of an out-of-range double on x86-64
    assert one(conn, "SELECT ceil(1e300), floor(-1e300)") == (-(2 ** 63), -(2 ** 63))


def test_math_nulls_and_text_arguments(conn):
    assert one(conn, "SELECT sqrt(NULL), log(NULL), power(NULL, 2), power(2, NULL)") == \
        (None, None, None, None)
    assert one(conn, "SELECT sqrt('16'), sqrt('16abc'), sin('abc')") == (4.0, 4.0, 0.0)
    assert one(conn, "SELECT typeof(sqrt(4)), typeof(power(2, 2))") == ("real", "real")


@pytest.mark.parametrize(("sql", "message"), [
    ("sqrt(-1)", EDOM),
    ("acos(2)", EDOM),
    ("asin(-1.5)", EDOM),
    ("log(-1)", EDOM),
    ("log(0)", ERANGE),
    ("log10(0)", ERANGE),
    ("sin(1e999)", EDOM),
    ("cot(1e999)", EDOM),
    ("power(0, -1)", ERANGE),
    ("power(-8, 0.5)", EDOM),
    ("power(10, 400)", ERANGE),
    ("power(10, -400)", ERANGE),
    ("exp(20000)", ERANGE),
])
def test_math_errno_becomes_an_sql_error(conn, sql, message):
    assert error(conn, f"SELECT {sql}") == message


def test_math_results_without_errno(conn):
    # osquery's exp uses expl(): finite long double results become inf/0 as doubles
    assert one(conn, "SELECT exp(1000), exp(-1000)") == (math.inf, 0.0)
    assert one(conn, "SELECT cot(0)") == math.inf
    assert one(conn, "SELECT power(-8, 3), sqrt(1e999)") == (-512.0, math.inf)


# --------------------------------------------------------------------------------------
# Filesystem
# --------------------------------------------------------------------------------------
@pytest.fixture
def programs(tmp_path: Path) -> Path:
    (tmp_path / "tool").write_text("")
    (tmp_path / "my app").write_text("")
    (tmp_path / "both").write_text("")
    (tmp_path / "both more").write_text("")
    (tmp_path / "dir").mkdir()
    return tmp_path


def test_find_file_path_in_cmd(conn, programs):
    tool, app = programs / "tool", programs / "my app"
    find = "SELECT find_file_path_in_cmd(?)"
    assert one(conn, find, f"{tool} --flag value") == str(tool)
    assert one(conn, find, f"   {tool}") == str(tool)  # leading spaces skipped
    assert one(conn, find, f"{programs}/my\\ app -x") == str(app)  # escaped space
    assert one(conn, find, f"{programs}/my app -x") == str(app)  # grows past a space
    assert one(conn, "SELECT find_file_path_in_cmd(?, 1)", f'"{app}" -x') == str(app)
    # without quoting enabled, quotes are part of the path
    assert one(conn, "SELECT find_file_path_in_cmd(?, 0)", f'"{tool}" -x') == ""
    assert one(conn, "SELECT find_file_path_in_cmd(?, 0, '^')", f"{programs}/my^ app") == \
        str(app)
    assert one(conn, find, f"{programs}/dir --x") == ""  # a directory is not a program
    assert one(conn, find, f"{programs}/missing --x") == ""
    assert one(conn, find, f"{programs}/both more -x") == str(programs / "both")  # shortest


@pytest.mark.parametrize("args", ["", "NULL", "'/bin/sh', NULL", "'/bin/sh', 0, 'ab'",
                                  "'/bin/sh', 0, ''"])
def test_find_file_path_in_cmd_invalid(conn, args):
    assert error(conn, f"SELECT find_file_path_in_cmd({args})") == \
        "Invalid inputs to find_binary_path_from_cmd"


def test_is_path_deterministic(conn, programs):
    check = "SELECT is_path_deterministic(?)"
    assert one(conn, check, str(programs / "tool")) == 1  # the whole command is the path
    assert one(conn, check, f"{programs}/tool --flag") == 1  # one candidate only
    assert one(conn, check, f"{programs}/both more -x") == 0  # 'both' and 'both more'
    assert one(conn, check, f"{programs}/missing -x") == 1  # nothing exists
    assert one(conn, "SELECT is_path_deterministic(?, 1)", f'"{programs}/my app" -x') == 1
    assert error(conn, "SELECT is_path_deterministic(NULL)") == \
        "Invalid inputs to is_path_deterministic"
    assert error(conn, "SELECT is_path_deterministic()") == \
        "Invalid inputs to is_path_deterministic"


@pytest.mark.skipif(os.name == "nt", reason="POSIX separator")
def test_parent_directory(conn):
    assert one(conn, "SELECT parent_directory('/usr/bin/env')") == "/usr/bin"
    assert one(conn, "SELECT parent_directory('/usr/bin/')") == "/usr/bin"
    assert one(conn, "SELECT parent_directory('/env')") == ""
    assert one(conn, "SELECT parent_directory('env')") is None
    for value in ("NULL", "42", "x'2f61'"):
        assert error(conn, f"SELECT parent_directory({value})") == \
            "Invalid inputs to parent_directory, TEXT was expected"


# --------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------
def test_carve_is_refused_with_a_clear_error(conn):
    message = error(conn, "SELECT carve('/etc/passwd')")
    assert "carve" in message and "cannot" in message
    # carve is an aggregate in osquery: it answers (here, fails) even over no rows
    assert "carve" in error(conn, "SELECT carve(x) FROM (SELECT 'a' AS x WHERE 0)")


def test_sleep_returns_the_requested_seconds(conn, monkeypatch):
    assert one(conn, "SELECT sleep(0), typeof(sleep(0))") == (0, "integer")
    assert one(conn, "SELECT sleep(-5), sleep(NULL)") == (0, 0)
    monkeypatch.setattr(_functions, "SLEEP_CAP_SECONDS", 0.05)
    real_sleep, slept = time.sleep, []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(_functions.time, "sleep", sleep)
    started = time.monotonic()
    assert one(conn, "SELECT sleep(3)") == 3
    assert one(conn, "SELECT sleep('2'), sleep(2.9)") == (2, 2)
    assert time.monotonic() - started >= 0.15  # really slept
    assert slept == [0.05, 0.05, 0.05]  # but capped
