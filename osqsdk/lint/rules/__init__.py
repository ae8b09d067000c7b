"""Every rule, listed explicitly. Codes are stable: a retired code is never reused.

Families: OSQ0xx input files, OSQ1xx SQL and schema, OSQ2xx platforms, OSQ3xx constraints
and cost, OSQ4xx pack and config fields, OSQ5xx decorators.
"""

from __future__ import annotations

from osqsdk.lint._rule import Rule
from osqsdk.lint.rules.cost import (
    EventedTableInSnapshot,
    EventedTableLogsRemoved,
    EventTimeConstraint,
    FleetLoad,
    IneffectiveOrderByLimit,
    MissingRequiredConstraint,
    PackOverBudget,
    QueryOverBudget,
    RecursiveGlob,
    SelectStarOnEvents,
    UnconstrainedExpensiveTable,
    UserDataWithoutUsersJoin,
    YaraWithoutSignature,
)
from osqsdk.lint.rules.decorators import (
    DecoratorColumnCollision,
    DecoratorIntervalNotMinute,
    DecoratorMultipleRows,
)
from osqsdk.lint.rules.inputs import (
    AnalysisFailed,
    AnalysisSkipped,
    ConfigTooLarge,
    DuplicateKey,
    InvalidJson,
    InvalidStructure,
    InvalidYaml,
    SyntaxError_,
    TooDeeplyNested,
    UnreadableFile,
)
from osqsdk.lint.rules.pack import (
    DuplicateQueryName,
    IntervalOutOfRange,
    MissingPackFile,
    PackPathOutsideInputs,
    ReservedQueryName,
    ScheduledNameCollision,
    ShardOutOfRange,
    SnapshotWithRemoved,
    UndefinedFleetQuery,
    UnknownKey,
)
from osqsdk.lint.rules.platform import (
    ColumnNotOnPlatform,
    PlatformConflict,
    TableNotOnPlatform,
    UnknownPlatform,
)
from osqsdk.lint.rules.sql import (
    AmbiguousColumn,
    DoubleQuotedString,
    DuplicateOutputColumn,
    LikeWithoutWildcard,
    MultipleStatements,
    NotASelect,
    SelectStar,
    UnknownColumn,
    UnknownFunction,
    UnknownTable,
    WrongArgumentCount,
)

__all__ = ["ALL_RULES", "rule_by_code"]

ALL_RULES: tuple[type[Rule], ...] = (
    SyntaxError_, InvalidJson, InvalidYaml, UnreadableFile, TooDeeplyNested, ConfigTooLarge,
    InvalidStructure, DuplicateKey, AnalysisFailed, AnalysisSkipped,
    MultipleStatements, NotASelect, UnknownTable, UnknownColumn, AmbiguousColumn,
    UnknownFunction, WrongArgumentCount, DoubleQuotedString, DuplicateOutputColumn,
    SelectStar, LikeWithoutWildcard,
    TableNotOnPlatform, ColumnNotOnPlatform, UnknownPlatform, PlatformConflict,
    MissingRequiredConstraint, RecursiveGlob, EventedTableInSnapshot, EventedTableLogsRemoved,
    SelectStarOnEvents,
    UnconstrainedExpensiveTable, QueryOverBudget, PackOverBudget, IneffectiveOrderByLimit,
    FleetLoad, UserDataWithoutUsersJoin, EventTimeConstraint, YaraWithoutSignature,
    IntervalOutOfRange, SnapshotWithRemoved, ShardOutOfRange, DuplicateQueryName,
    ReservedQueryName, ScheduledNameCollision, UnknownKey, PackPathOutsideInputs,
    MissingPackFile, UndefinedFleetQuery,
    DecoratorMultipleRows, DecoratorIntervalNotMinute, DecoratorColumnCollision,
)


def rule_by_code(code_or_name: str) -> type[Rule] | None:
    """The rule with this code (``OSQ104``) or name (``unknown-column``), any case."""
    key = code_or_name.strip().lower()
    for rule in ALL_RULES:
        if rule.code.lower() == key or rule.name == key:
            return rule
    return None
