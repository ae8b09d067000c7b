"""osquery's custom SQL functions and collations, for the local runner's apsw connection.

osqueryd registers these on every SQLite connection it opens (``openOptimized`` in
osquery/sql/sqlite_util.cpp calls the ``register*Extensions`` helpers of
osquery/sql/sqlite_*.cpp). ``register(connection)`` does the same here, reproducing the
C++ behaviour as read from osquery's source rather than what the names suggest:

- NULL handling, argument typing (``sqlite3_value_type`` checks versus silent
  ``sqlite3_value_text``/``_int``/``_double`` conversions), return types and the exact
  error texts osquery passes to ``sqlite3_result_error``.
- C-string semantics where osquery builds ``std::string`` from ``const char*``: the
  value is cut at its first NUL byte. Text results that are not valid UTF-8 (possible in
  SQLite, impossible in a Python ``str``) come back as a BLOB with the same bytes.
- Numbers turned into text the way osquery's SQLite (3.42) does: ``%!.15g`` for REAL
  (the SQLite bundled with apsw prints up to 17 digits), decimal for INTEGER.
- osquery does not build SQLite with SQLITE_ENABLE_MATH_FUNCTIONS; its own
  sqlite_math.cpp provides the math functions (``log`` is the natural logarithm, ``ceil``
  returns an INTEGER, domain/range errors are SQL errors). apsw's SQLite does have the
  math extension, so the osquery versions override the built-ins, and the built-in math
  functions osquery lacks (``ln``, ``log2``, ``pow``, ``mod``, ``trunc``, ``atan2``,
  the hyperbolic ones, ``ceiling``, two-argument ``log``) are shadowed by stubs that
  raise the error osquery's SQLite gives (see ``SHADOWED_BUILTINS``). Those stubs fail
  when evaluated; osquery fails when the statement is prepared.
- osquery registers no ``regexp`` function (not in sqlite_util.cpp, sqlite_*.cpp,
  virtual_table.cpp, nor osqueryi's shell), so ``x REGEXP y`` fails there with SQLite's
  "no such function: REGEXP", and tables never see a REGEXP constraint. It is left
  unregistered by default; ``register(connection, regexp=True)`` adds one anyway (same
  ECMAScript dialect as regex_match) for callers that want the operator regardless.

Regular expressions: osquery uses ``std::regex`` (ECMAScript grammar) on the raw bytes of
the text; its Linux and macOS builds use LLVM's libc++. Patterns here run as Python
``re`` *bytes* patterns (so ``\\w``, ``\\d``, ``\\s`` and ``.`` see bytes in the C locale,
like std::regex on a ``std::string``), after a translation of the ECMAScript dialect
(``_ecma_to_python``): ``.`` excludes both ``\\n`` and ``\\r``; ``$`` matches only at the
very end (Python's ``$`` also matches before a final newline); ``\\0`` is always NUL,
``\\cX`` a control character, ``\\uHHHH`` its low byte; a back-reference takes every
following digit; POSIX classes inside brackets (``[[:digit:]]``) are expanded; ``[]``
never matches and ``[^]`` matches any byte; what libc++ rejects is rejected ("Invalid
regex"): escaped letters without an ECMAScript meaning (``\\A``, ``\\Z``, ``\\e``...),
a bare ``]``, ``{`` or ``}``, ``{,n}``, quantified assertions, and Python-only syntax
(``(?P<..>``, lookbehind, inline flags, comments, possessive quantifiers). Known
differences left: ECMAScript clears a group's capture on each repetition of its
enclosing quantifier (Python keeps the last one); for patterns that can match the
empty string, ``regex_split`` follows the C++ standard (each piece starts where the
previous match ended), which older libc++ releases did not do.

``sleep(n)`` really sleeps, but for at most ``SLEEP_CAP_SECONDS`` (a pack query such as
``SELECT sleep(300)`` must not stall a test run); it still returns ``n`` like osquery.
``carve(path)`` cannot carve files locally and raises an SQL error saying so.
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import logging
import math
import os
import re
import socket
import stat
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import apsw

from osqsdk.runner._values import real_text as _real_text

__all__ = ["COLLATIONS", "FUNCTIONS", "SHADOWED_BUILTINS", "SLEEP_CAP_SECONDS", "register"]

_log = logging.getLogger(__name__)

#: Upper bound, in seconds, for the real sleep done by ``sleep(n)``.
SLEEP_CAP_SECONDS = 1.0

#: osquery's hidden ``--regex_max_size`` flag default (bytes).
REGEX_MAX_SIZE = 256

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_SIZE_MAX = (1 << 64) - 1
_C_SPACE = b" \t\n\v\f\r"

# Windows builds of osquery use other separators/escapes (sqlite_filesystem.cpp).
_DIR_SEPARATOR = b"\\" if os.name == "nt" else b"/"
_CMD_ESCAPE = b"^" if os.name == "nt" else b"\\"


# --------------------------------------------------------------------------------------
# SQLite value conversions, as the C API performs them
# --------------------------------------------------------------------------------------
def _text_bytes(value: Any) -> bytes | None:
    """``sqlite3_value_text`` with its full ``sqlite3_value_bytes`` length; None for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, float):
        return _real_text(value).encode()
    return str(int(value)).encode()


def _cstr(data: bytes) -> bytes:
    """What ``std::string(const char*)`` keeps: everything before the first NUL."""
    cut = data.find(b"\0")
    return data if cut < 0 else data[:cut]


def _text(value: Any) -> bytes | None:
    data = _text_bytes(value)
    return None if data is None else _cstr(data)


_ATOI = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]*)")
_ATOF = re.compile(rb"[ \t\n\v\f\r]*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def _atoi64(data: bytes) -> int:
    """Leading integer of a text, clamped to int64 (``sqlite3Atoi64``, C ``strtoll``)."""
    match = _ATOI.match(data)
    digits = match.group(2) if match else b""
    number = int(digits) if digits else 0
    if match and match.group(1) == b"-":
        number = -number
    return max(_INT64_MIN, min(_INT64_MAX, number))


def _to_int32(number: int) -> int:
    """C conversion of a 64-bit integer to ``int`` (keeps the low 32 bits)."""
    return ((number + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _value_int64(value: Any) -> int:
    """``sqlite3_value_int64``."""
    if value is None:
        return 0
    if isinstance(value, float):
        if math.isnan(value) or value <= _INT64_MIN:
            return _INT64_MIN
        if value >= _INT64_MAX:
            return _INT64_MAX
        return int(value)
    if isinstance(value, (bytes, str)):
        return _atoi64(_text_bytes(value) or b"")
    return int(value)


def _value_int(value: Any) -> int:
    """``sqlite3_value_int``."""
    return _to_int32(_value_int64(value))


def _value_double(value: Any) -> float:
    """``sqlite3_value_double``: text is parsed for a leading number, else 0.0."""
    if value is None:
        return 0.0
    if isinstance(value, (bytes, str)):
        match = _ATOF.match(_text_bytes(value) or b"")
        return float(match.group(1)) if match else 0.0
    return float(value)


def _as_size_t(number: int) -> int:
    """``static_cast<size_t>(int)``: negative indexes become huge (and so out of range)."""
    return number & _SIZE_MAX


def _text_result(data: bytes) -> str | bytes:
    """``sqlite3_result_text`` of arbitrary bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _fail(message: str) -> apsw.SQLError:
    return apsw.SQLError(message)


# --------------------------------------------------------------------------------------
# Encoding (osquery/sql/sqlite_encoding.cpp, osquery/utils/base64.cpp, utils/chars.cpp)
# --------------------------------------------------------------------------------------
_B64_VALUES = {c: i for i, c in enumerate(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_B64_VALUES[ord("=")] = 0  # boost's decoding table reads '=' as zero bits


def _b64_decode(data: bytes) -> bytes:
    """osquery's base64::decode: line breaks dropped, trailing '=' trimmed, b"" on error."""
    data = data.replace(b"\r\n", b"").replace(b"\n", b"").rstrip(b"=")
    if not data:
        return b""
    # boost reads one character past the end when a lone 6-bit group is left over,
    # meets the terminating NUL and gives up.
    if len(data) % 4 == 1:
        return b""
    accumulator = bits = 0
    out = bytearray()
    for char in data:
        sextet = _B64_VALUES.get(char)
        if sextet is None:
            return b""
        accumulator = (accumulator << 6) | sextet
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    return bytes(out)


def _is_printable(data: bytes) -> bool:
    return all(0x20 <= byte < 0x7F for byte in data)


def _to_base64(value: Any) -> Any:
    # osquery/sql/sqlite_encoding.cpp: to_base64
    data = _text_bytes(value)
    if data is None:
        return None
    return base64.b64encode(data).decode("ascii")


def _from_base64(value: Any) -> Any:
    # osquery/sql/sqlite_encoding.cpp: from_base64 ("" when the input is not base64)
    data = _text_bytes(value)
    if data is None:
        return None
    return _text_result(_b64_decode(data))


def _conditional_to_base64(value: Any) -> Any:
    # osquery/sql/sqlite_encoding.cpp: conditional_to_base64 (encode unless all bytes are
    # printable ASCII 0x20-0x7E)
    data = _text_bytes(value)
    if data is None:
        return None
    if _is_printable(data):
        return data.decode("ascii")
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------
# Hashing (osquery/sql/sqlite_hashing.cpp)
# --------------------------------------------------------------------------------------
def _hasher(algorithm: str) -> Callable[[Any], Any]:
    def digest(value: Any) -> Any:
        # osquery/sql/sqlite_hashing.cpp: md5/sha1/sha256 of the C string, lowercase hex
        data = _text(value)
        if data is None:
            return None
        return hashlib.new(algorithm, data).hexdigest()

    digest.__name__ = f"_{algorithm}"
    return digest


class _Address:
    """A parsed boost::asio::ip::address: family, bytes and (IPv6) scope id."""

    __slots__ = ("packed", "scope", "v6")

    def __init__(self, v6: bool, packed: bytes, scope: int = 0) -> None:
        self.v6, self.packed, self.scope = v6, packed, scope

    def key(self) -> tuple[int, bytes, int]:
        # boost orders IPv4 before IPv6, then by bytes, then by scope id.
        return (1 if self.v6 else 0, self.packed, self.scope)


def _c_atoi(data: bytes) -> int:
    return _to_int32(_atoi64(data))


def _parse_v4(text: bytes) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET, text.decode("ascii"))
    except (OSError, ValueError, UnicodeError):
        return None


def _parse_v6(text: bytes) -> tuple[bytes, int] | None:
    """boost's inet_pton for AF_INET6: the part before '%' must parse; the rest is the
    scope (an interface index for link-local addresses, else its leading number)."""
    address, percent, name = text.partition(b"%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, address.decode("ascii"))
    except (OSError, ValueError, UnicodeError):
        return None
    scope = 0
    if percent:
        link_local = packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80
        multicast_link_local = packed[0] == 0xFF and (packed[1] & 0x0F) == 0x02
        if link_local or multicast_link_local:
            try:
                scope = socket.if_nametoindex(name.decode("ascii"))
            except (OSError, ValueError, UnicodeError):
                scope = 0
        if scope == 0:
            scope = _c_atoi(name) & 0xFFFFFFFF
    return packed, scope


def _make_address(text: bytes) -> _Address | None:
    """boost::asio::ip::make_address: IPv6 is tried first, then dotted-quad IPv4."""
    parsed = _parse_v6(text)
    if parsed is not None:
        return _Address(True, parsed[0], parsed[1])
    packed = _parse_v4(text)
    return None if packed is None else _Address(False, packed)


def _community_id(args: tuple[Any, ...], strict: bool) -> Any:
    def error(message: str) -> Any:
        if strict:
            raise _fail(message)
        _log.warning("%s", message)
        return None

    seed = 0
    if len(args) == 6:
        if not isinstance(args[5], int):
            return error("Community ID seed must be an integer")
        if not -(1 << 15) <= args[5] < (1 << 15):
            return error("Community ID seed must fit in 2 bytes")
        seed = args[5]
    if not isinstance(args[0], str) or not isinstance(args[1], str):
        return error("Community ID IPs must be strings")
    saddr = _make_address(_cstr(args[0].encode("utf-8", "surrogatepass")))
    if saddr is None:
        return error("Community ID saddr cannot be parsed as IP")
    daddr = _make_address(_cstr(args[1].encode("utf-8", "surrogatepass")))
    if daddr is None:
        return error("Community ID daddr cannot be parsed as IP")
    sport, dport, proto = args[2], args[3], args[4]
    if not isinstance(sport, int) or not isinstance(dport, int):
        return error("Community ID ports must be integers")
    if not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF):
        return error("Community ID ports must fit in 2 bytes")
    if not isinstance(proto, int):
        return error("Community ID protocol must be an integer")
    if not 0 <= proto <= 0xFF:
        return error("Community ID protocol must fit in 1 byte")
    # The lower endpoint goes first; equal addresses are ordered by port.
    if not (saddr.key() < daddr.key() or (saddr.key() == daddr.key() and sport < dport)):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    payload = (seed.to_bytes(2, "big", signed=True) + saddr.packed + daddr.packed
               + bytes((proto, 0)) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
    return "1:" + base64.b64encode(hashlib.sha1(payload).digest()).decode("ascii")


def _community_id_v1(*args: Any) -> Any:
    # osquery/sql/sqlite_hashing.cpp: community_id_v1 (NULL and a logged warning on bad input)
    return _community_id(args, strict=False)


def _community_id_v1_strict(*args: Any) -> Any:
    # osquery/sql/sqlite_hashing.cpp: community_id_v1_strict (SQL error on bad input)
    return _community_id(args, strict=True)


# --------------------------------------------------------------------------------------
# Network (osquery/sql/sqlite_network.cpp)
# --------------------------------------------------------------------------------------
def _make_network(text: bytes, v6: bool) -> tuple[_Address, int] | None:
    """boost::asio::ip::make_network_v4/_v6: ADDRESS/DIGITS, no host-bit check."""
    slash = text.find(b"/")
    if slash < 0 or slash == len(text) - 1:
        return None
    digits = text[slash + 1:]
    if not digits.isdigit():
        return None
    if v6:
        parsed = _parse_v6(text[:slash])
        if parsed is None:
            return None
        address = _Address(True, parsed[0], parsed[1])
    else:
        packed = _parse_v4(text[:slash])
        if packed is None:
            return None
        address = _Address(False, packed)
    prefix = _c_atoi(digits)
    if not 0 <= prefix <= (128 if v6 else 32):
        return None
    return address, prefix


def _in_cidr_block(cidr: Any, ip: Any) -> Any:
    # osquery/sql/sqlite_network.cpp: in_cidr_block, membership in boost's network.hosts()
    if not isinstance(cidr, str):
        raise _fail("CIDR must be a string")
    if not isinstance(ip, str):
        raise _fail("IP address must be a string")
    address = _make_address(_cstr(ip.encode("utf-8", "surrogatepass")))
    if address is None:
        raise _fail("IP address cannot be parsed")
    network = _make_network(_cstr(cidr.encode("utf-8", "surrogatepass")), address.v6)
    if network is None:
        family = "v6" if address.v6 else "v4"
        raise _fail(f"CIDR for IP address {family} cannot be parsed")
    base, prefix = network
    value = int.from_bytes(address.packed, "big")
    if not address.v6:
        # hosts() of an IPv4 network excludes the network and broadcast addresses
        # (so a /31 holds nothing); a /32 holds its address. End bounds wrap at 2**32.
        base_value = int.from_bytes(base.packed, "big")
        if prefix == 32:
            begin, end = base_value, (base_value + 1) & 0xFFFFFFFF
        else:
            mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
            first = base_value & mask
            begin, end = (first + 1) & 0xFFFFFFFF, first | (~mask & 0xFFFFFFFF)
        return int(begin <= value < end)
    # hosts() of an IPv6 network spans every address of it; the end bound is the last
    # address plus one, which wraps to :: for networks reaching ffff:...:ffff.
    host_mask = (1 << (128 - prefix)) - 1
    base_value = int.from_bytes(base.packed, "big")
    begin6 = (base_value & ~host_mask, base.scope)
    end6 = (((base_value | host_mask) + 1) & ((1 << 128) - 1), base.scope)
    return int(begin6 <= (value, address.scope) < end6)


# --------------------------------------------------------------------------------------
# Strings (osquery/sql/sqlite_string.cpp)
# --------------------------------------------------------------------------------------
def _token_split(data: bytes, tokens: bytes) -> list[bytes]:
    """osquery::split: split on any of the token bytes, drop empty pieces, trim the rest."""
    pieces = re.split(b"[" + re.escape(tokens) + b"]", data)
    return [piece.strip(_C_SPACE) for piece in pieces if piece]


def _split_arguments(value: Any, tokens: Any, index: Any) -> tuple[bytes, bytes, int] | None:
    if value is None or tokens is None or index is None:
        return None
    data, token = _text(value) or b"", _text(tokens) or b""
    position = _as_size_t(_value_int(index))
    if not token:
        raise _fail("Invalid input to split function")
    return data, token, position


def _split(value: Any, tokens: Any, index: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: split (any of TOKENS separates; out of range → NULL)
    arguments = _split_arguments(value, tokens, index)
    if arguments is None:
        return None
    data, token, position = arguments
    pieces = _token_split(data, token)
    return _text_result(pieces[position]) if position < len(pieces) else None


_CLASS_ESCAPES = frozenset(b"dDsSwW")
_CONTROL_ESCAPES = frozenset(b"fnrtv")
_POSIX_CLASSES = {
    b"alnum": rb"0-9A-Za-z", b"alpha": rb"A-Za-z", b"blank": rb" \t",
    b"cntrl": rb"\x00-\x1f\x7f", b"digit": rb"0-9", b"d": rb"0-9",
    b"graph": rb"\x21-\x7e", b"lower": rb"a-z", b"print": rb"\x20-\x7e",
    b"punct": rb"!-/:-@\[-`{-~", b"space": rb" \t\n\v\f\r", b"s": rb" \t\n\v\f\r",
    b"upper": rb"A-Z", b"w": rb"0-9A-Za-z_", b"xdigit": rb"0-9A-Fa-f",
}
_BRACE = re.compile(rb"\{[0-9]+(?:,[0-9]*)?\}")
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_DIGITS = re.compile(rb"[0-9]+")


class _BadRegex(Exception):
    pass


def _ecma_escape(pattern: bytes, i: int, in_class: bool) -> tuple[int, bytes, str]:
    """Translate the escape at ``pattern[i]`` (a backslash) as libc++'s ECMAScript parser
    reads it. Returns (next index, Python text, kind) with kind "atom" or "assertion"."""
    if i + 1 >= len(pattern):
        raise _BadRegex
    char = pattern[i + 1:i + 2]
    code = char[0]
    if char == b"0":
        return i + 2, rb"\x00", "atom"  # NUL; following digits are literals
    if char in (b"b", b"B"):
        if not in_class:
            return i + 2, b"\\" + char, "assertion"
        if char == b"B":
            raise _BadRegex
        return i + 2, rb"\x08", "atom"  # backspace inside brackets
    if code in _CLASS_ESCAPES or code in _CONTROL_ESCAPES:
        return i + 2, b"\\" + char, "atom"
    if char == b"c":
        letter = pattern[i + 2:i + 3]
        if not (letter.isalpha() and letter.isascii()):
            raise _BadRegex
        return i + 3, rb"\x%02x" % (letter[0] % 32), "atom"
    if char == b"x":
        if not _HEX2.fullmatch(pattern[i + 2:i + 4]):
            raise _BadRegex
        return i + 4, pattern[i:i + 4], "atom"
    if char == b"u":
        if not _HEX4.fullmatch(pattern[i + 2:i + 6]):
            raise _BadRegex
        # std::regex over char keeps the low byte of the code unit
        return i + 6, rb"\x%02x" % (int(pattern[i + 2:i + 6], 16) & 0xFF), "atom"
    if char.isdigit():
        if in_class:
            raise _BadRegex
        match = _DIGITS.match(pattern, i + 1)
        assert match is not None  # char (pattern[i + 1]) is an ASCII digit
        digits = match.group(0)  # all digits: one back-reference
        if int(digits) > 99:
            raise _BadRegex
        return i + 1 + len(digits), b"(?:\\" + digits + b")", "atom"
    if char.isalnum() or char == b"_":
        raise _BadRegex  # libc++ accepts only punctuation (and non-ASCII) as identity escapes
    return i + 2, re.escape(char), "atom"


def _ecma_to_python(pattern: bytes) -> bytes:
    """Translate a std::regex ECMAScript pattern into an equivalent Python bytes pattern."""
    out = bytearray()
    i, n = 0, len(pattern)
    # "atom": the last item can take a quantifier; "quant": it just took one (a lazy
    # '?' may follow); "none": nothing to repeat (start, '(', '|', an assertion).
    state = "none"
    groups: list[bool] = []  # for each open group: is it a lookahead (an assertion)?
    while i < n:
        char = pattern[i:i + 1]
        if char == b"\\":
            i, translated, kind = _ecma_escape(pattern, i, in_class=False)
            out += translated
            state = "none" if kind == "assertion" else "atom"
            continue
        if char == b"[":
            i, translated = _ecma_class(pattern, i)
            out += translated
            state = "atom"
            continue
        if char in (b"*", b"+", b"?", b"{"):
            if char == b"{":
                brace = _BRACE.match(pattern, i)
                if brace is None:
                    raise _BadRegex
                token = brace.group(0)
            else:
                token = char
            if state == "atom":
                state = "quant"
            elif state == "quant" and char == b"?":
                state = "lazy"
            else:
                raise _BadRegex
            out += token
            i += len(token)
            continue
        if char == b"(":
            if pattern[i + 1:i + 3] == b"?:":
                groups.append(False)
                out += b"(?:"
                i += 3
            elif pattern[i + 1:i + 3] in (b"?=", b"?!"):
                groups.append(True)
                out += pattern[i:i + 3]
                i += 3
            else:  # "(?" followed by anything else fails on the '?'
                groups.append(False)
                out += char
                i += 1
            state = "none"
            continue
        if char == b")":
            if not groups:
                raise _BadRegex
            state = "none" if groups.pop() else "atom"
            out += char
        elif char == b".":
            out += rb"[^\n\r]"
            state = "atom"
        elif char == b"$":
            out += rb"\Z"
            state = "none"
        elif char in (b"^", b"|"):
            out += char
            state = "none"
        elif char in (b"]", b"}"):
            raise _BadRegex  # not a pattern character in ECMAScript
        else:
            out += re.escape(char)
            state = "atom"
        i += 1
    return bytes(out)


def _ecma_class(pattern: bytes, start: int) -> tuple[int, bytes]:
    """Translate the bracket expression starting at ``start``; returns (next index, text)."""
    i = start + 1
    negated = pattern[i:i + 1] == b"^"
    if negated:
        i += 1
    if pattern[i:i + 1] == b"]":  # ECMAScript: [] matches nothing, [^] matches anything
        return i + 1, (rb"[\x00-\xff]" if negated else rb"(?!)")
    body = bytearray()
    n = len(pattern)
    while i < n:
        char = pattern[i:i + 1]
        if char == b"]":
            return i + 1, b"[" + (b"^" if negated else b"") + bytes(body) + b"]"
        if char == b"\\":
            i, translated, _ = _ecma_escape(pattern, i, in_class=True)
            body += translated
            continue
        if char == b"[":
            posix = re.match(rb"\[:([a-z]+):\]", pattern[i:])
            if posix:
                if posix.group(1) not in _POSIX_CLASSES:
                    raise _BadRegex
                body += _POSIX_CLASSES[posix.group(1)]
                i += len(posix.group(0))
                continue
            body += rb"\["
            i += 1
            continue
        body += char if char in (b"-", b"^") else re.escape(char)
        i += 1
    raise _BadRegex  # unterminated bracket expression


@functools.lru_cache(maxsize=256)
def _compile(pattern: bytes) -> re.Pattern[bytes]:
    """Compile an ECMAScript pattern; raises _BadRegex where std::regex would throw."""
    try:
        translated = _ecma_to_python(pattern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(translated)
    except (re.error, OverflowError, RecursionError) as exc:
        raise _BadRegex from exc


def _regex_split(value: Any, pattern: Any, index: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: regex_split (the text between matches, as
    # std::sregex_token_iterator with -1 yields it)
    arguments = _split_arguments(value, pattern, index)
    if arguments is None:
        return None
    data, token, position = arguments
    if len(token) > REGEX_MAX_SIZE:
        raise _fail("Invalid regex")
    try:
        regex = _compile(token)
    except _BadRegex:
        raise _fail("Invalid regex") from None
    pieces: list[bytes] = []
    previous_end = 0
    for match in regex.finditer(data):
        pieces.append(data[previous_end:match.start()])
        previous_end = match.end()
    if not pieces:
        pieces = [data]
    elif previous_end < len(data):  # an empty trailing piece is not produced
        pieces.append(data[previous_end:])
    return _text_result(pieces[position]) if position < len(pieces) else None


def _regex_match(value: Any, pattern: Any, index: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: regex_match (group INDEX of the first match; a
    # group that did not take part is ''; no match or no such group is NULL)
    if value is None or pattern is None or index is None:
        return None
    regex_text = _text(pattern) or b""
    data = _text(value) or b""
    position = _as_size_t(_value_int(index))
    if len(regex_text) > REGEX_MAX_SIZE:
        raise _fail(f"Invalid regex: too big, max size is {REGEX_MAX_SIZE} bytes")
    try:
        regex = _compile(regex_text)
    except _BadRegex:
        raise _fail("Invalid regex") from None
    match = regex.search(data)
    if match is None or position > regex.groups:
        return None
    return _text_result(match.group(position) or b"")


def _concat_values(values: tuple[Any, ...], separator: bytes) -> Any:
    """osquery's concatFunc: NULLs are skipped, but a separator is still written after
    every non-NULL value that is not the last argument."""
    if not values:
        return None
    out = bytearray()
    last = len(values) - 1
    for position, value in enumerate(values):
        if value is None:
            continue
        out += _text(value) or b""
        if separator and position < last:
            out += separator
    if len(out) > 0x7FFFFFFF:
        raise _fail("Too much data for concat_ws")
    return _text_result(bytes(out))


def _concat(*values: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: concat (NULLs ignored; no arguments → NULL)
    return _concat_values(values, b"")


def _concat_ws(*values: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: concat_ws (a NULL separator counts as '')
    if not values:
        raise _fail("Missing separator to concat_ws")
    separator = b"" if values[0] is None else (_text(values[0]) or b"")
    return _concat_values(values[1:], separator)


def _inet_aton(value: Any) -> Any:
    # osquery/sql/sqlite_string.cpp: inet_aton (inet_pton AF_INET; anything else → NULL)
    data = _text(value)
    if data is None or b":" in data:
        return None
    packed = _parse_v4(data)
    return None if packed is None else int.from_bytes(packed, "big")


# --------------------------------------------------------------------------------------
# Filesystem (osquery/sql/sqlite_filesystem.cpp)
# --------------------------------------------------------------------------------------
def _is_regular_existing(path: bytes) -> bool:
    """boost::filesystem::status(path): exists and is not a directory (links followed)."""
    if not path:
        return False
    try:
        return not stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _program_path(command: bytes, escape: bytes, quoting: bool, shortest: bool) -> bytes:
    """Grow a candidate path through COMMAND, testing it at each unquoted space."""
    position = 0
    while position < len(command) and command[position:position + 1] in _C_SPACE:
        position += 1
    candidate = bytearray()
    found = b""
    quoted = escaped = False
    for byte in command[position:]:
        char = bytes((byte,))
        if escaped:
            candidate += char
            escaped = False
            continue
        if quoting and char == b'"':
            quoted = not quoted
            continue
        if char == escape:
            escaped = True
            continue
        if not quoted and char in _C_SPACE and _is_regular_existing(bytes(candidate)):
            found = bytes(candidate)
            if shortest:
                return found
        candidate += char
    if (not found or not shortest) and _is_regular_existing(bytes(candidate)):
        found = bytes(candidate)
    return found


def _program_path_args(args: tuple[Any, ...], shortest: bool) -> bytes | None:
    if not args or any(value is None for value in args):
        return None
    command = _text(args[0]) or b""
    quoting = len(args) > 1 and _value_int(args[1]) != 0
    escape = _CMD_ESCAPE
    if len(args) > 2:
        escape = _text(args[2]) or b""
        if len(escape) != 1:
            return None
    return _program_path(command, escape, quoting, shortest)


def _find_file_path_in_cmd(*args: Any) -> Any:
    # osquery/sql/sqlite_filesystem.cpp: find_file_path_in_cmd(cmd[, allow_quoting[, escape]])
    found = _program_path_args(args, shortest=True)
    if found is None:
        raise _fail("Invalid inputs to find_binary_path_from_cmd")
    return _text_result(found)


def _is_path_deterministic(*args: Any) -> Any:
    # osquery/sql/sqlite_filesystem.cpp: is_path_deterministic(cmd[, allow_quoting[, escape]])
    shortest = _program_path_args(args, shortest=True)
    if shortest is not None:
        command = _text(args[0]) or b""
        if not shortest or len(shortest) == len(command):
            return 1
        longest = _program_path_args(args, shortest=False)
        if longest is not None:
            return int(len(shortest) == len(longest))
    raise _fail("Invalid inputs to is_path_deterministic")


def _parent_directory(value: Any) -> Any:
    # osquery/sql/sqlite_filesystem.cpp: parent_directory (TEXT only; no separator → NULL)
    if not isinstance(value, str):
        raise _fail("Invalid inputs to parent_directory, TEXT was expected")
    path = _text(value) or b""
    cut = path.rfind(_DIR_SEPARATOR)
    return None if cut < 0 else _text_result(path[:cut])


# --------------------------------------------------------------------------------------
# Operations (osquery/sql/sqlite_operations.cpp)
# --------------------------------------------------------------------------------------
class _Carve:
    """carve(path) is an aggregate in osquery; every use fails here."""

    def step(self, *args: Any) -> None:
        return None

    def final(self) -> Any:
        # osquery/sql/sqlite_operations.cpp: carve (queues a file carve in osqueryd)
        raise _fail("carve() cannot run in the osqsdk runner: it does not carve files "
                    "(osqueryd queues a carve, or answers 'Carve Failed:' when "
                    "--carver_disable_function is set)")


def _sleep(value: Any) -> Any:
    # osquery/sql/sqlite_operations.cpp: sleep (seconds read as int; negative → 0, no sleep)
    seconds = _value_int(value)
    if seconds < 0:
        return 0
    time.sleep(min(float(seconds), SLEEP_CAP_SECONDS))
    return seconds


# --------------------------------------------------------------------------------------
# Version comparison (osquery/sql/sqlite_version.cpp)
# --------------------------------------------------------------------------------------
_DELIMITER_RANK = {ord("~"): 1, ord("-"): 2, ord("^"): 3, ord("."): 4, ord(":"): 5}


def _signed_char(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def _is_digit(byte: int) -> bool:
    return 0x30 <= byte <= 0x39


def _compare_remainder(left: bytes, right: bytes, pos: int, diff: int,
                       compare_remaining: bool, remainder_precedence: bool) -> int:
    """Ordering once the shorter version is used up at ``pos``."""
    if len(left) == pos:
        following = right[pos]
        if compare_remaining:
            if following == ord("~"):
                return 1
            if following == ord("-"):
                return 0
            if following == ord("^"):
                return -1
            if diff and (not remainder_precedence or not _is_digit(left[pos - 1])):
                return diff
        elif diff and following in _DELIMITER_RANK:
            return diff
    if len(right) == pos:
        following = left[pos]
        if compare_remaining:
            if following == ord("~"):
                return -1
            if following == ord("-"):
                return 0
            if following == ord("^"):
                return 1
            if diff and (not remainder_precedence or not _is_digit(right[pos - 1])):
                return diff
        elif diff and following in _DELIMITER_RANK:
            return diff
    return len(left) - len(right)


def _version_compare_bytes(left: bytes, right: bytes, epoch: bool = False,
                           delimiter_precedence: bool = False, compare_remaining: bool = False,
                           remainder_precedence: bool = False) -> int:
    """osquery's versionCompare: negative, zero or positive like a collation."""
    if not left and not right:
        return 0
    if not left:
        return -1
    if not right:
        return 1
    if left == right:
        return 0
    if epoch:
        left_epoch, right_epoch = left.find(b":"), right.find(b":")
        if left_epoch >= 0 and right_epoch >= 0:
            if left_epoch != right_epoch:
                return left_epoch - right_epoch
        elif left_epoch >= 0:
            return 1
        elif right_epoch >= 0:
            return -1
    first_diff = 0
    shortest = min(len(left), len(right))
    for i in range(shortest):
        left_rank = _DELIMITER_RANK.get(left[i], 0)
        right_rank = _DELIMITER_RANK.get(right[i], 0)
        if not left_rank and not right_rank:
            # Inside a segment: remember the first character difference.
            if not first_diff:
                first_diff = _signed_char(left[i]) - _signed_char(right[i])
            continue
        if not left_rank:
            return 1  # the left segment is longer
        if not right_rank:
            return -1
        if first_diff:
            return first_diff
        if delimiter_precedence and left_rank != right_rank:
            return left_rank - right_rank
    if len(left) == len(right):
        return first_diff
    return _compare_remainder(left, right, shortest, first_diff, compare_remaining,
                              remainder_precedence)


#: The options each flavour/collation turns on:
#: (epoch, delimiter precedence, compare remaining, remainder precedence).
_FLAVOURS: dict[str, tuple[bool, bool, bool, bool]] = {
    "": (False, False, False, False),
    "ARCH": (True, False, True, True),
    "DPKG": (True, True, False, False),
    "RHEL": (True, True, True, False),
}


def _version_compare(*args: Any) -> Any:
    # osquery/sql/sqlite_version.cpp: version_compare(v1, v2[, 'ARCH'|'DPKG'|'RHEL']) → -1/0/1
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        raise _fail("Must provide two version strings to compare.")
    options = _FLAVOURS[""]
    if len(args) > 2:
        if not isinstance(args[2], str):
            raise _fail("The optional third parameter is not a string.")
        flavour = (_text(args[2]) or b"").upper().decode("latin-1")  # ASCII-only folding
        if flavour not in ("ARCH", "DPKG", "RHEL"):
            raise _fail("The optional third parameter does not match one of: "
                        "(ARCH, DPKG, RHEL).")
        options = _FLAVOURS[flavour]
    result = _version_compare_bytes(_text(args[0]) or b"", _text(args[1]) or b"", *options)
    return max(-1, min(1, result))


def _collation(flavour: str) -> Callable[[str, str], int]:
    options = _FLAVOURS[flavour]

    def collate(left: str, right: str) -> int:
        # osquery/sql/sqlite_version.cpp: the VERSION[_ARCH|_DPKG|_RHEL] collations
        return _version_compare_bytes(left.encode("utf-8", "surrogatepass"),
                                      right.encode("utf-8", "surrogatepass"), *options)

    collate.__name__ = f"_collate_version_{flavour.lower() or 'generic'}"
    return collate


#: Collation name → flavour; SQLite compares collation names case-insensitively.
COLLATIONS: dict[str, str] = {
    "VERSION": "", "VERSION_ARCH": "ARCH", "VERSION_DPKG": "DPKG", "VERSION_RHEL": "RHEL",
}


# --------------------------------------------------------------------------------------
# Math (osquery/sql/sqlite_math.cpp)
# --------------------------------------------------------------------------------------
# expl() (x86-64 long double) overflows past this and underflows to 0 below the other;
# between them the long double result just becomes inf or 0 as a double, without errno.
_EXPL_OVERFLOW = 11356.523406294143
_EXPL_UNDERFLOW = -11399.498531488861


def _math_error(code: int) -> apsw.SQLError:
    return _fail(os.strerror(code))


def _double_result(result: float) -> float | None:
    return None if math.isnan(result) else result  # SQLite stores NaN as NULL


def _double_function(compute: Callable[[float], float],
                     pole_at_zero: bool = False) -> Callable[[Any], Any]:
    """callDoubleFunc: NULL → NULL; otherwise the value as a double; errno → SQL error."""

    def call(value: Any) -> Any:
        if value is None:
            return None
        number = _value_double(value)
        if pole_at_zero and number == 0.0:
            raise _math_error(errno.ERANGE)  # log(0): pole error
        try:
            return _double_result(compute(number))
        except ValueError:
            raise _math_error(errno.EDOM) from None
        except OverflowError:
            raise _math_error(errno.ERANGE) from None

    return call


def _cot(x: float) -> float:
    tangent = math.tan(x)
    if tangent == 0.0:
        return math.copysign(math.inf, tangent)
    return 1.0 / tangent


def _expl(x: float) -> float:
    if math.isinf(x):
        return 0.0 if x < 0 else math.inf
    if x > _EXPL_OVERFLOW or x < _EXPL_UNDERFLOW:
        raise OverflowError
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _power(base: Any, exponent: Any) -> Any:
    # osquery/sql/sqlite_math.cpp: power (C pow; errno → SQL error)
    if base is None or exponent is None:
        return None
    x, y = _value_double(base), _value_double(exponent)
    finite = math.isfinite(x) and math.isfinite(y)
    if x == 0.0 and y < 0 and y != -math.inf:
        raise _math_error(errno.ERANGE)  # pole error
    if finite and x < 0 and not y.is_integer():
        raise _math_error(errno.EDOM)
    try:
        result = math.pow(x, y)
    except OverflowError:
        raise _math_error(errno.ERANGE) from None
    except ValueError:
        raise _math_error(errno.EDOM) from None
    if finite and (math.isinf(result) or (result == 0.0 and x != 0.0)):
        raise _math_error(errno.ERANGE)  # overflow, or underflow to zero
    return _double_result(result)


def _int64_cast(number: float) -> int:
    """C (int64_t) cast of a double on x86-64: out of range gives INT64_MIN."""
    if not math.isfinite(number) or not _INT64_MIN <= number < -_INT64_MIN:
        return _INT64_MIN
    return int(number)


def _rounding_function(compute: Callable[[float], float]) -> Callable[[Any], Any]:
    """callCastedDoubleFunc: INTEGER passes through, others are rounded to an INTEGER."""

    def call(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        return _int64_cast(compute(_value_double(value)))

    return call


def _with_source(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        # osquery/sql/sqlite_math.cpp: one of osquery's C-math SQL functions
        return function(*args)

    wrapper.__name__ = f"_{name}"
    return wrapper


_MATH: dict[str, Callable[..., Any]] = {
    "sqrt": _double_function(math.sqrt),
    "acos": _double_function(math.acos),
    "asin": _double_function(math.asin),
    "atan": _double_function(math.atan),
    "cos": _double_function(math.cos),
    "sin": _double_function(math.sin),
    "tan": _double_function(math.tan),
    "cot": _double_function(_cot),
    "exp": _double_function(_expl),
    "log": _double_function(math.log, pole_at_zero=True),
    "log10": _double_function(math.log10, pole_at_zero=True),
    "ceil": _rounding_function(math.ceil),
    "floor": _rounding_function(math.floor),
    "degrees": _double_function(lambda x: 180.0 * x / math.pi),
    "radians": _double_function(lambda x: x * math.pi / 180.0),
}


def _pi() -> float:
    # osquery/sql/sqlite_math.cpp: pi
    return math.pi


#: SQLite math built-ins that osquery's SQLite does not have, shadowed by stubs:
#: name → (argument count, error osquery's SQLite reports).
SHADOWED_BUILTINS: dict[str, tuple[int, str]] = {
    name: (-1, f"no such function: {name}") for name in (
        "acosh", "asinh", "atanh", "atan2", "ceiling", "cosh", "ln", "log2", "mod", "pow",
        "sinh", "tanh", "trunc")
}
_WRONG_ARITY = {"log": (2, "wrong number of arguments to function log()")}


def _raiser(message: str) -> Callable[..., Any]:
    def unavailable(*args: Any) -> Any:
        # osquery/sql/sqlite_math.cpp defines none of these (no SQLite math extension)
        raise _fail(message)

    return unavailable


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------
# name → ((argument count, implementation, deterministic), ...)
_SCALARS: dict[str, tuple[tuple[int, Callable[..., Any], bool], ...]] = {
    "conditional_to_base64": ((1, _conditional_to_base64, True),),
    "to_base64": ((1, _to_base64, True),),
    "from_base64": ((1, _from_base64, True),),
    "is_path_deterministic": ((-1, _is_path_deterministic, True),),
    "find_file_path_in_cmd": ((-1, _find_file_path_in_cmd, True),),
    "parent_directory": ((1, _parent_directory, True),),
    "md5": ((1, _hasher("md5"), True),),
    "sha1": ((1, _hasher("sha1"), True),),
    "sha256": ((1, _hasher("sha256"), True),),
    "community_id_v1": ((5, _community_id_v1, True), (6, _community_id_v1, True)),
    "community_id_v1_strict": ((5, _community_id_v1_strict, True),
                               (6, _community_id_v1_strict, True)),
    "in_cidr_block": ((2, _in_cidr_block, True),),
    "sleep": ((1, _sleep, False),),
    "split": ((3, _split, True),),
    "regex_split": ((3, _regex_split, True),),
    "inet_aton": ((1, _inet_aton, True),),
    "regex_match": ((3, _regex_match, True),),
    "concat": ((-1, _concat, True),),
    "concat_ws": ((-1, _concat_ws, True),),
    "version_compare": ((-1, _version_compare, True),),
    **{name: ((1, _with_source(function, name), True),) for name, function in _MATH.items()},
    "power": ((2, _power, True),),
    "pi": ((0, _pi, True),),
}
_AGGREGATES: dict[str, tuple[int, Callable[[], Any]]] = {"carve": (1, _Carve)}

#: Every osquery SQL function provided, with the argument counts it accepts (-1: any).
FUNCTIONS: dict[str, tuple[int, ...]] = {
    **{name: tuple(arity for arity, _, _ in variants) for name, variants in _SCALARS.items()},
    **{name: (arity,) for name, (arity, _) in _AGGREGATES.items()},
}


def _regexp(pattern: Any, value: Any) -> Any:
    # Not an osquery function: the opt-in REGEXP operator, regexp(pattern, value)
    if pattern is None or value is None:
        return None
    try:
        regex = _compile(_text(pattern) or b"")
    except _BadRegex:
        raise _fail("Invalid regex") from None
    return int(regex.search(_text(value) or b"") is not None)


def register(connection: apsw.Connection, *, regexp: bool = False) -> None:
    """Register osquery's SQL functions and collations on ``connection``.

    ``regexp=True`` also defines ``regexp()`` (the ``REGEXP`` operator), which osquery
    does not have.
    """
    for name, variants in _SCALARS.items():
        for arity, implementation, deterministic in variants:
            connection.create_scalar_function(name, implementation, arity,
                                              deterministic=deterministic)
    for name, (arity, factory) in _AGGREGATES.items():
        connection.create_aggregate_function(name, factory, arity)
    for name, (arity, message) in {**SHADOWED_BUILTINS, **_WRONG_ARITY}.items():
        connection.create_scalar_function(name, _raiser(message), arity)
    for name, flavour in COLLATIONS.items():
        connection.create_collation(name, _collation(flavour))
    if regexp:
        # cast: apsw's ScalarProtocol is variadic only; apsw calls this with numargs (2) values
        connection.create_scalar_function("regexp", cast("apsw.ScalarProtocol", _regexp), 2,
                                          deterministic=True)
