"""``import osqsdk.loki`` stays light: no Thrift, click or sqlglot."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("code", [
    "import osqsdk.loki, sys; "
    "assert not {'sqlglot','click','thrift'} & {m.split('.')[0] for m in sys.modules}, "
    "sorted(m for m in sys.modules if m.split('.')[0] in ('sqlglot','click','thrift'))",
    # building the logger plugin does not need them either
    "import osqsdk.loki, sys; osqsdk.loki.LokiLogger; osqsdk.loki.load_config; "
    "assert not {'sqlglot','click','thrift'} & {m.split('.')[0] for m in sys.modules}",
    # the CLI module brings click, never sqlglot
    "import osqsdk.loki._cli, sys; assert 'click' in sys.modules; "
    "assert 'sqlglot' not in {m.split('.')[0] for m in sys.modules}",
])
def test_import_graph(code):
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names():
    import osqsdk.loki

    assert osqsdk.loki.__all__ == sorted(osqsdk.loki.__all__)
    for name in osqsdk.loki.__all__:
        assert getattr(osqsdk.loki, name) is not None
