"""``osqsdk lint``: check osquery packs, configs, decorators and query cost against the
osquery table schema, before anything reaches a host.

Python API::

    from osqsdk.lint import lint_paths, lint_text

    result = lint_paths(["packs/"])            # LintResult: .findings, .exit_code()
    for finding in result.findings:
        print(finding)                        # path:line:col: CODE message [query]

    findings = lint_text('{"queries": {"a": {"query": "SELECT * FROM proceses"}}}',
                         filename="pack.conf")
    assert findings[0].code == "OSQ103" and findings[0].arguments["table"] == "proceses"

Findings are frozen values (:class:`Finding`); rules are classes listed in
:data:`osqsdk.lint.rules.ALL_RULES`, each documented by its docstring (``osqsdk rule CODE``).
This package does not import Thrift; sqlglot, PyYAML and jsonschema load only when needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Finding", "LintInputError", "LintResult", "Rule", "Settings", "all_rules",
           "lint_paths", "lint_text"]

_EXPORTS = {
    "Finding": "osqsdk.lint._finding",
    "LintInputError": "osqsdk.lint._inputs",
    "LintResult": "osqsdk.lint._runner",
    "Rule": "osqsdk.lint._rule",
    "Settings": "osqsdk.lint._settings",
    "lint_paths": "osqsdk.lint._runner",
    "lint_text": "osqsdk.lint._runner",
}


def all_rules() -> tuple[Any, ...]:
    """Every rule class, in code order."""
    from osqsdk.lint.rules import ALL_RULES

    return ALL_RULES


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'osqsdk.lint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from osqsdk.lint._finding import Finding
    from osqsdk.lint._inputs import LintInputError
    from osqsdk.lint._rule import Rule
    from osqsdk.lint._runner import LintResult, lint_paths, lint_text
    from osqsdk.lint._settings import Settings
