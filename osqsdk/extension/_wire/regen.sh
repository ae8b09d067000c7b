#!/bin/sh
# Regenerate osqsdk/extension/_wire/_gen from osquery.thrift with Debian's thrift-compiler 0.17.
# The generated files are committed; tests/test_wire.py checks they match this IDL.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
thrift --gen py -out "$out" "$here/osquery.thrift"
rm -rf "$here/_gen"
mv "$out/_gen" "$here/_gen"
# The generator writes one absolute import ("import _gen.Extension"); make it relative so
# the bindings live inside osqsdk without touching sys.path.
sed -i -e 's/^import _gen\.Extension$/from . import Extension as _Extension/' \
       -e 's/_gen\.Extension\./_Extension./g' "$here/_gen/ExtensionManager.py"
rm -f "$here/_gen"/*-remote
