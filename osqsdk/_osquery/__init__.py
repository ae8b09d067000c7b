"""osquery's own rules that several products share: result-line and status-log records,
column types, and the config text rules (comment stripping, size and depth limits, booleans,
intervals). Depends on nothing of osqsdk but ``osqsdk.errors``.
"""
