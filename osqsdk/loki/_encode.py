"""Push request bodies: protobuf in a raw snappy block (the default) or JSON (+gzip).

Wire facts from docs/loki.md §1.2-§1.5: protobuf bodies are ``application/x-protobuf``, a snappy
*block* (not the framed format) of ``logproto.PushRequest``; JSON bodies are the v1 schema
with the timestamp as a string of Unix nanoseconds, and may be gzip-compressed (Loki does
not undo snappy on JSON).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping, Sequence

import cramjam

from osqsdk.loki._labels import Entry
from osqsdk.loki._proto.push_pb2 import PushRequest

__all__ = ["Body", "encode", "labels_to_dict"]

_NS = 1_000_000_000
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}
_dict_cache: dict[str, dict[str, str]] = {}


class Body:
    """An encoded request: bytes plus the headers that describe them."""

    __slots__ = ("data", "entries", "headers")

    def __init__(self, data: bytes, headers: Mapping[str, str], entries: int) -> None:
        self.data = data
        self.headers = headers
        self.entries = entries


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: _SIMPLE.get(m.group(1)) or chr(int(m.group(1)[1:], 16)),
                         value)


def labels_to_dict(labels: str) -> dict[str, str]:
    """Read back a label string made by format_labels (for the JSON body)."""
    cached = _dict_cache.get(labels)
    if cached is None:
        if len(_dict_cache) > 65536:
            _dict_cache.clear()
        cached = _dict_cache[labels] = {k: _unescape(v) for k, v in _PAIR.findall(labels)}
    return cached


def _protobuf(streams: Iterable[tuple[str, Sequence[Entry]]]) -> bytes:
    request = PushRequest()
    add_stream = request.streams.add
    for labels, entries in streams:
        stream = add_stream(labels=labels)
        add = stream.entries.add
        for entry in entries:
            seconds, nanos = divmod(entry.ts_ns, _NS)
            # a dict for the timestamp is the fastest way to fill it with upb
            item = add(line=entry.line, timestamp={"seconds": seconds, "nanos": nanos})
            if entry.metadata:
                add_pair = item.structuredMetadata.add
                for name, value in entry.metadata:
                    add_pair(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _json(streams: Iterable[tuple[str, Sequence[Entry]]]) -> bytes:
    out = []
    for labels, entries in streams:
        values = [[str(e.ts_ns), e.line, dict(e.metadata)] if e.metadata
                  else [str(e.ts_ns), e.line] for e in entries]
        out.append({"stream": labels_to_dict(labels), "values": values})
    return json.dumps({"streams": out}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def encode(streams: Sequence[tuple[str, Sequence[Entry]]], encoding: str = "protobuf",
           compression: str = "gzip") -> Body:
    """Encode streams (label string, entries sorted by time) as one push request body."""
    count = sum(len(entries) for _, entries in streams)
    if encoding == "protobuf":
        # Content-Encoding: snappy is optional for protobuf; Alloy sends it (docs/loki.md §1.2).
        return Body(_protobuf(streams), {"Content-Type": "application/x-protobuf",
                                         "Content-Encoding": "snappy"}, count)
    data = _json(streams)
    headers = {"Content-Type": "application/json"}
    if compression == "gzip":
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Body(data, headers, count)
