"""The private wire layer: generated bindings, the C codec, limits, error mapping."""

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TApplicationException
from thrift.transport.TTransport import TMemoryBuffer, TTransportException

from osqsdk.errors import ExtensionConnectionError, ExtensionTimeout, ProtocolError
from osqsdk.extension._wire import _gen
from osqsdk.extension._wire._gen import Extension
from osqsdk.extension._wire.client import map_errors
from osqsdk.extension._wire.server import MAX_CONTAINER_ITEMS, MAX_STRING_BYTES
from tests.conftest import peer_missing

WIRE = Path(_gen.__file__).parent.parent


def test_generated_bindings_match_the_idl(tmp_path):
    if shutil.which("thrift") is None:
        peer_missing("thrift-compiler is not installed")
    copy = tmp_path / "_wire"
    shutil.copytree(WIRE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(copy / "_gen")
    subprocess.run([str(copy / "regen.sh")], check=True)
    compare = filecmp.dircmp(WIRE / "_gen", copy / "_gen", ignore=["__pycache__"])
    assert compare.left_only == [] and compare.right_only == [] and compare.diff_files == []


def test_the_c_codec_is_in_use():
    from thrift.protocol import fastbinary  # noqa: F401  (ImportError if thrift lacks it)

    proto = TBinaryProtocolAccelerated(TMemoryBuffer())
    assert proto._fast_encode is not None and proto._fast_decode is not None


def encode(args) -> bytes:
    buf = TMemoryBuffer()
    args.write(TBinaryProtocolAccelerated(buf))
    return buf.getvalue()


def decode(data: bytes, **limits):
    args = Extension.call_args()
    args.read(TBinaryProtocolAccelerated(TMemoryBuffer(data), **limits))
    return args


def test_request_values_arrive_as_bytes_so_nothing_is_replaced():
    data = encode(Extension.call_args("table", "t", {"context": b"caf\xe9"}))
    assert decode(data).request == {"context": b"caf\xe9"}


def test_string_length_limit_stops_a_bad_peer():
    data = encode(Extension.call_args("table", "t", {"k": b"x" * 100}))
    with pytest.raises(OverflowError):
        decode(data, string_length_limit=50)
    assert MAX_STRING_BYTES == 100 * 1024 * 1024


def test_container_length_limit_stops_a_bad_peer():
    data = encode(Extension.call_args("table", "t", {str(i): b"" for i in range(20)}))
    # thrift's C codec reports this overflow as "got wrong ttype while reading field"
    with pytest.raises((OverflowError, TypeError)):
        decode(data, container_length_limit=10)
    assert MAX_CONTAINER_ITEMS == 1 << 20


@pytest.mark.parametrize("raised, expected", [
    (TimeoutError("t"), ExtensionTimeout),
    (TTransportException(TTransportException.TIMED_OUT, "t"), ExtensionTimeout),
    (TTransportException(TTransportException.END_OF_FILE, "eof"), ExtensionConnectionError),
    (TTransportException(TTransportException.NOT_OPEN, "no"), ExtensionConnectionError),
    (TTransportException(TTransportException.UNKNOWN, "?"), ExtensionConnectionError),
    (TApplicationException(TApplicationException.MISSING_RESULT, "m"), ProtocolError),
    (TProtocolException(TProtocolException.SIZE_LIMIT, "big"), ProtocolError),
    (OverflowError("size exceeded"), ProtocolError),
    (TypeError("got wrong ttype while reading field"), ProtocolError),
    (ConnectionRefusedError(111, "refused"), ExtensionConnectionError),
    (BrokenPipeError(32, "pipe"), ExtensionConnectionError),
])
def test_thrift_and_socket_errors_map_to_osqsdk_errors(raised, expected):
    with pytest.raises(expected, match=r"^doing x: "):
        with map_errors("doing x"):
            raise raised


def test_every_transport_exception_type_is_mapped():
    codes = [v for k, v in vars(TTransportException).items() if k.isupper() and isinstance(v, int)]
    assert len(codes) >= 5
    for code in codes:
        with pytest.raises((ExtensionConnectionError, ExtensionTimeout)):
            with map_errors("x"):
                raise TTransportException(code, "x")
