#!/bin/sh
# Regenerate push_pb2.py from push.proto with protoc (Debian: apt-get install
# protobuf-compiler). The generated module is committed: at run time osqsdk needs only the
# `protobuf` package. tests/loki/test_proto.py checks that the two agree.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
protoc -I . --python_out=. osqsdk/loki/_proto/push.proto
