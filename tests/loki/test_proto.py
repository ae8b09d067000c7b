"""The committed push_pb2.py matches push.proto, and the bytes are what Loki decodes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cramjam
import pytest

from osqsdk.loki import Entry
from osqsdk.loki._encode import encode
from osqsdk.loki._proto import push_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "osqsdk" / "loki" / "_proto" / "push.proto"
_TYPES = {"string": 9, "int64": 3, "int32": 5}  # FieldDescriptor type numbers


def declared_fields() -> dict[str, set[tuple[str, int, str, bool]]]:
    """(name, number, type, repeated) per message, read from push.proto's text."""
    messages: dict[str, set[tuple[str, int, str, bool]]] = {}
    for name, body in re.findall(r"message (\w+) \{(.*?)\n\}", PROTO.read_text(), re.S):
        fields = set()
        for line in body.splitlines():
            line = line.split("//")[0].strip()
            match = re.fullmatch(r"(repeated )?(\w+) (\w+) = (\d+);", line)
            if match:
                fields.add((match.group(3), int(match.group(4)), match.group(2),
                            bool(match.group(1))))
        messages[name] = fields
    return messages


def test_committed_module_has_the_fields_of_the_proto():
    declared = declared_fields()
    generated = {}
    for name, message in push_pb2.DESCRIPTOR.message_types_by_name.items():
        generated[name] = {
            (f.name, f.number, f.message_type.name if f.message_type else
             {v: k for k, v in _TYPES.items()}[f.type],
             f.label == f.LABEL_REPEATED if hasattr(f, "label") else f.is_repeated)
            for f in message.fields}
    assert generated == declared
    # Loki's field numbers (docs/loki.md §1.5)
    assert ("streams", 1, "StreamAdapter", True) in declared["PushRequest"]
    assert declared["EntryAdapter"] == {("timestamp", 1, "Timestamp", False),
                                        ("line", 2, "string", False),
                                        ("structuredMetadata", 3, "LabelPairAdapter", True)}


def test_regenerating_gives_the_committed_module(tmp_path):
    protoc = shutil.which("protoc")
    if protoc is None:
        # The field-by-field check above runs everywhere; this exact one needs protoc
        # (apt-get install protobuf-compiler).
        pytest.skip("protoc is not installed")
    subprocess.run([protoc, "-I", str(ROOT), f"--python_out={tmp_path}",
                    str(PROTO.relative_to(ROOT))], check=True, cwd=ROOT)
    fresh = (tmp_path / "osqsdk" / "loki" / "_proto" / "push_pb2.py").read_text()
    committed = (PROTO.parent / "push_pb2.py").read_text()
    serialized = re.compile(r"AddSerializedFile\((b'.*?')\)", re.S)
    assert serialized.search(fresh).group(1) == serialized.search(committed).group(1)


def test_body_is_a_raw_snappy_block_of_lokis_wire_format():
    body = encode([('{a="b"}', [Entry('{a="b"}', 1_700_000_000_123_456_789, "hi",
                                      (("k", "v"),))])])
    assert body.headers == {"Content-Type": "application/x-protobuf",
                            "Content-Encoding": "snappy"}
    raw = bytes(cramjam.snappy.decompress_raw(body.data))
    # Built by hand from the wire tags in docs/loki.md §1.5: PushRequest.streams (0x0A) >
    # StreamAdapter.labels (0x0A), .entries (0x12) > EntryAdapter.timestamp (0x0A:
    # seconds 0x08, nanos 0x10), .line (0x12), .structuredMetadata (0x1A: name 0x0A,
    # value 0x12).
    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    ts = b"\x08" + varint(1_700_000_000) + b"\x10" + varint(123_456_789)
    pair = b"\x0a\x01k\x12\x01v"
    entry = (b"\x0a" + varint(len(ts)) + ts + b"\x12\x02hi" + b"\x1a" + varint(len(pair))
             + pair)
    stream = b"\x0a\x07{a=\"b\"}" + b"\x12" + varint(len(entry)) + entry
    assert raw == b"\x0a" + varint(len(stream)) + stream


def test_snappy_is_the_block_format_not_the_framed_one():
    data = b"osquery " * 100
    block = bytes(cramjam.snappy.compress_raw(data))
    assert block[:2] == b"\xa0\x06"  # starts with the decoded length, 800, as a uvarint
    assert not block.startswith(b"\xff\x06\x00\x00sNaPpY")


def test_importing_the_module_warns_nothing():
    code = ("import warnings; warnings.simplefilter('error'); "
            "import osqsdk.loki._proto.push_pb2")
    subprocess.run([sys.executable, "-c", code], check=True)
