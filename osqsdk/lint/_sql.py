"""Parse a query once and work out what it refers to, for every rule to share.

:func:`parse` runs sqlglot (SQLite dialect) behind a nesting guard; :func:`analyze` resolves
tables, CTEs, derived tables, table-valued functions, joins (``USING``/``NATURAL``),
correlated subqueries and select aliases the way SQLite does, and records per table which
columns carry usable constraints (osquery passes those to the table as its WHERE input).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ParseError, TokenError

from osqsdk.lint._lexer import code_chars
from osqsdk.schema import ColumnSchema, Schema, TableSchema

__all__ = ["Analysis", "ColumnRef", "Parsed", "Source", "analyze", "node_span", "parse",
           "suggest"]

_DIALECT = SQLite()

#: SQLite refuses expressions nested deeper than this (SQLITE_MAX_EXPR_DEPTH).
SQLITE_MAX_DEPTH = 1000
#: Deeper than this the parser is not run (its recursion would not finish well).
PARSE_DEPTH_LIMIT = 150
#: More JOINs without ON/USING than this and the parser is not run (its time doubles with
#: each: 14 take 0.04 s).
BARE_JOIN_LIMIT = 14
_STRINGS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|"
                                   r"\[[^\]]*\]?|--[^\n]*|/\*.*?(?:\*/|$)", re.S)


def _bare_joins(sql: str) -> int:
    """JOINs beyond the ON and USING clauses of ``sql`` (strings and comments left out)."""
    if "join" not in sql.lower():
        return 0
    code = _STRINGS_AND_COMMENTS.sub(" ", sql).lower()
    joins = len(re.findall(r"\bjoin\b", code))
    return joins - len(re.findall(r"\b(?:on|using)\b", code))

_ROWID = frozenset({"rowid", "oid", "_rowid_"})
QUERY_TYPES = (exp.Select, exp.SetOperation)
# Comparison operators osquery passes to a table as constraints (sqlite's xBestIndex ops).
_CONSTRAINT_OPS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.Glob,
                   exp.RegexpLike, exp.Is)


@dataclass
class Parsed:
    """The statements of one query string, or the reason it does not parse."""

    sql: str
    statements: list[exp.Expr]
    error: str | None = None
    error_offset: int = 0
    error_end: int | None = None
    depth: int = 0
    too_deep: bool = False


def nesting_depth(sql: str) -> tuple[int, int]:
    """Deepest parenthesis nesting outside strings and comments, and where it is reached."""
    depth = best = where = 0
    for i in code_chars(sql, "()"):
        if sql[i] == "(":
            depth += 1
            if depth > best:
                best, where = depth, i
        else:
            depth = max(0, depth - 1)
    return best, where


def _line_col_offset(sql: str, line: int, col: int) -> int:
    start = 0
    for _ in range(max(0, line - 1)):
        nl = sql.find("\n", start)
        if nl == -1:
            break
        start = nl + 1
    return min(len(sql), start + max(0, col - 1))


_CACHE: dict[str, Parsed] = {}


def parse(sql: str) -> Parsed:
    """Parse ``sql`` with the SQLite dialect (cached by text)."""
    cached = _CACHE.get(sql)
    if cached is not None:
        return cached
    depth, where = nesting_depth(sql)
    bare = _bare_joins(sql)
    if depth > PARSE_DEPTH_LIMIT:
        result = Parsed(sql, [], f"parentheses nested {depth} deep", where, where + 1, depth,
                        True)
    elif bare > BARE_JOIN_LIMIT:
        # sqlglot's parse time doubles with each JOIN that has no ON or USING (19: 1 s,
        # 25: gigabytes); SQLite still judges the query, only the analysis is skipped
        result = Parsed(sql, [], f"{bare} joins without ON or USING are more than the "
                                 f"analyser reads ({BARE_JOIN_LIMIT})", 0, None, depth)
    else:
        result = _parse(sql, depth)
    if len(_CACHE) > 20_000:
        _CACHE.clear()
    _CACHE[sql] = result
    return result


def _parse(sql: str, depth: int) -> Parsed:
    try:
        statements = [s for s in _DIALECT.parse(sql) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        desc = _clean_error(str(err.get("description") or exc).splitlines()[0])
        line, col = err.get("line"), err.get("col")
        offset = _line_col_offset(sql, line, col) - 1 if line and col else 0
        token = str(err.get("highlight") or "")
        if token:
            found = sql.rfind(token, 0, offset + 1)
            if found != -1:
                offset = found
        near = f' near "{token}"' if token else ""
        return Parsed(sql, [], f"{desc}{near}", max(0, offset),
                      max(0, offset) + max(1, len(token)), depth)
    except TokenError as exc:
        return Parsed(sql, [], f"cannot tokenize: {str(exc).splitlines()[0][:200]}",
                      _token_error_offset(sql), None, depth)
    except RecursionError:
        return Parsed(sql, [], "query nests too deeply to analyse", 0, None, depth, True)
    return Parsed(sql, statements, None, 0, None, depth)


_TOKEN_REPR = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")


def _clean_error(text: str) -> str:
    text = _TOKEN_REPR.sub(lambda m: "the end of the query" if m.group(1) == "SENTINEL"
                           else repr(m.group(2)), text)
    return text


def _token_error_offset(sql: str) -> int:
    # The usual cause is an unterminated quote: point at the last opening one.
    for quote in ("'", '"', "`"):
        if sql.count(quote) % 2:
            return sql.rfind(quote)
    return 0


def node_span(node: exp.Expr | None) -> tuple[int | None, int | None]:
    """Offsets ``[start, end)`` of a node in its SQL, from the tokens sqlglot recorded."""
    if node is None:
        return None, None
    meta = getattr(node, "_meta", None)
    if meta and "start" in meta:
        return meta["start"], meta["end"] + 1
    starts: list[int] = []
    ends: list[int] = []
    for child in node.walk():
        m = getattr(child, "_meta", None)
        if m and "start" in m:
            starts.append(m["start"])
            ends.append(m["end"] + 1)
    if starts:
        return min(starts), max(ends)
    return None, None


def suggest(name: str, candidates: Collection[str]) -> str | None:
    """The closest candidate to ``name`` (or None when nothing is close)."""
    found = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1,
                                      cutoff=0.75)
    if not found:
        return None
    for c in candidates:
        if c.lower() == found[0]:
            return c
    return found[0]


# --- analysis -----------------------------------------------------------------------------

@dataclass(eq=False)
class Source:
    """One item of a FROM clause."""

    alias: str
    display: str
    kind: str  # table, view, cte, derived, function, values, unknown
    node: exp.Expression
    table: TableSchema | None = None
    columns: dict[str, str] | None = None  # lower name -> spelling; None = anything

    def has(self, name: str) -> bool | None:
        """True/False whether the source has column ``name``; None when it cannot be told."""
        low = name.lower()
        if self.table is not None:
            return self.table.column(low) is not None or (low in _ROWID)
        if self.columns is None:
            return None
        return low in self.columns or low in _ROWID

    def column_names(self) -> list[str]:
        if self.table is not None:
            return [c.name for c in self.table.columns]
        return list((self.columns or {}).values())


@dataclass(eq=False)
class Block:
    """One SELECT: its sources, the columns USING/NATURAL merged, its output aliases."""

    node: exp.Expression
    parent: Block | None
    sources: list[Source] = field(default_factory=list)
    merged: set[str] = field(default_factory=set)
    aliases: set[str] = field(default_factory=set)

    def source(self, alias: str) -> Source | None:
        low = alias.lower()
        for s in self.sources:
            if s.alias == low:
                return s
        return None


@dataclass(eq=False)
class ColumnRef:
    """A column reference and what it resolved to."""

    node: exp.Column
    name: str
    qualifier: str | None
    status: str = "ok"  # ok, unknown, ambiguous, quoted-string, unknown-qualifier, alias
    source: Source | None = None
    column: ColumnSchema | None = None
    candidates: list[Source] = field(default_factory=list)


@dataclass(eq=False)
class Constraint:
    """A usable constraint on a table column: ``column op other``."""

    source: Source
    column: str
    op: str
    node: exp.Expression
    value: exp.Expression | None


@dataclass(eq=False)
class FunctionCall:
    node: exp.Expression
    name: str
    nargs: int


@dataclass(eq=False)
class Analysis:
    """Everything the rules need to know about one statement."""

    statement: exp.Expression
    sources: list[Source] = field(default_factory=list)
    unknown_tables: list[Source] = field(default_factory=list)
    columns: list[ColumnRef] = field(default_factory=list)
    stars: list[tuple[exp.Expression, Block, list[Source]]] = field(default_factory=list)
    functions: list[FunctionCall] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    using_errors: list[tuple[exp.Expression, str, Source | None]] = field(default_factory=list)
    outputs: list[str] | None = None
    output_nodes: list[exp.Expression] = field(default_factory=list)
    or_groups: list[tuple[Source, list[set[str]], exp.Expression]] = field(default_factory=list)

    def satisfies_any(self, source: Source, columns: set[str]) -> bool:
        """Whether every scan of ``source`` is constrained on at least one of ``columns``."""
        if any(c.source is source and c.column in columns for c in self.constraints):
            return True
        return any(src is source and all(b & columns for b in sets)
                   for src, sets, _ in self.or_groups)

    def tables(self) -> Iterator[tuple[Source, TableSchema]]:
        """Sources that are schema tables or views, each with its table."""
        return ((s, s.table) for s in self.sources if s.table is not None)

    def constrained(self, source: Source) -> dict[str, list[Constraint]]:
        out: dict[str, list[Constraint]] = {}
        for c in self.constraints:
            if c.source is source:
                out.setdefault(c.column, []).append(c)
        return out


class _Analyzer:
    def __init__(self, schema: Schema, table_functions: dict[str, tuple[str, ...]],
                 sql: str) -> None:
        self.sql = sql
        self.schema = schema
        self.tvfs = table_functions
        self.result: Analysis | None = None

    def run(self, statement: exp.Expression) -> Analysis:
        self.result = Analysis(statement)
        if isinstance(statement, (*QUERY_TYPES, exp.Subquery)):
            outputs, nodes = self.query(statement, None, {})
            self.result.outputs = outputs
            self.result.output_nodes = nodes
        return self.result

    # Queries -------------------------------------------------------------------------
    def query(self, q: exp.Expression, parent: Block | None, ctes: dict[str, Source]
              ) -> tuple[list[str] | None, list[exp.Expression]]:
        ctes = dict(ctes)
        with_ = q.args.get("with_")
        if with_ is not None:
            for cte in with_.expressions:
                name = cte.alias_or_name
                alias_cols = [c.name for c in (cte.args.get("alias").columns
                                               if cte.args.get("alias") else [])]
                src = Source(name.lower(), name, "cte", cte, None, None)
                # SQLite lets a CTE refer to itself with or without RECURSIVE.
                src.columns = ({c.lower(): c for c in alias_cols} if alias_cols else None)
                ctes[name.lower()] = src
                outputs, _ = self.query(cte.this, parent, ctes)
                names = alias_cols or outputs
                src.columns = None if names is None else {n.lower(): n for n in names}
                ctes[name.lower()] = src
        if isinstance(q, exp.Subquery):
            return self.query(q.this, parent, ctes)
        if isinstance(q, exp.SetOperation):
            left, nodes = self.query(q.this, parent, ctes)
            self.query(q.expression, parent, ctes)
            # ORDER BY / LIMIT of a compound select refer to its output columns.
            block = Block(q, parent)
            block.aliases = {n.lower() for n in (left or [])}
            if left is None:
                block.sources.append(Source("", "", "unknown", q))
            for key in ("order", "limit", "offset"):
                if q.args.get(key) is not None:
                    self.expressions(q.args[key], block, ctes)
            return left, nodes
        if isinstance(q, exp.Select):
            return self.select(q, parent, ctes)
        if isinstance(q, exp.Values):
            width = len(q.expressions[0].expressions) if q.expressions and isinstance(
                q.expressions[0], exp.Tuple) else 1
            return [f"column{i + 1}" for i in range(width)], []
        return None, []

    def select(self, q: exp.Select, parent: Block | None, ctes: dict[str, Source]
               ) -> tuple[list[str] | None, list[exp.Expression]]:
        assert self.result is not None
        block = Block(q, parent)
        from_ = q.args.get("from_")
        items: list[tuple[exp.Expression, exp.Join | None]] = []
        if from_ is not None:
            items.append((from_.this, None))
        for join in q.args.get("joins") or []:
            items.append((join.this, join))
        for node, join in items:
            before = list(block.sources)
            src = self.source(node, block, ctes)
            if src is None:
                continue
            block.sources.append(src)
            if join is not None:
                self.join(join, src, before, block)
        # Select-list aliases can be referenced from WHERE, GROUP BY, HAVING and ORDER BY.
        outputs: list[str] | None = []
        out_nodes: list[exp.Expression] = []
        for proj in q.expressions:
            if isinstance(proj, exp.Alias):
                block.aliases.add(proj.alias.lower())
        for proj in q.expressions:
            names = self.projection(proj, block)
            if names is None or outputs is None:
                outputs = None
            else:
                outputs.extend(names)
            out_nodes.append(proj)
        for key, value in q.args.items():
            if key in ("with_", "from_", "expressions", "joins") or value is None:
                continue
            self.expressions(value, block, ctes)
        for proj in q.expressions:
            self.expressions(proj, block, ctes)
        for join in q.args.get("joins") or []:
            for key in ("on", "match_condition"):
                if join.args.get(key) is not None:
                    self.expressions(join.args[key], block, ctes)
        for node, _ in items:
            if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
                for arg in node.this.args.values():
                    self.expressions(arg, block, ctes)
        self.collect_constraints(q)
        return outputs, out_nodes

    def projection(self, proj: exp.Expression, block: Block) -> list[str] | None:
        assert self.result is not None
        star_qualifier = None
        is_star = isinstance(proj, exp.Star)
        if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
            is_star, star_qualifier = True, proj.table
        if is_star:
            sources = block.sources
            if star_qualifier:
                found = block.source(star_qualifier)
                sources = [found] if found else []
            self.result.stars.append((proj, block, sources))
            names: list[str] = []
            merged_seen: set[str] = set()
            for s in sources:
                if s.table is not None:
                    cols = [c.name for c in s.table.star_columns]
                elif s.columns is not None:
                    cols = list(s.columns.values())
                else:
                    return None
                for c in cols:
                    if c.lower() in block.merged and not star_qualifier:
                        if c.lower() in merged_seen:
                            continue
                        merged_seen.add(c.lower())
                    names.append(c)
            return names
        if isinstance(proj, exp.Alias):
            return [proj.alias]
        if isinstance(proj, exp.Column):
            return [proj.name]
        return [proj.sql(dialect="sqlite")]

    def source(self, node: exp.Expression, block: Block, ctes: dict[str, Source]
               ) -> Source | None:
        assert self.result is not None
        alias = node.alias if hasattr(node, "alias") else ""
        alias_node = node.args.get("alias") if isinstance(node, exp.Expression) else None
        alias_cols = [c.name for c in alias_node.columns] if isinstance(
            alias_node, exp.TableAlias) and alias_node.columns else []
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
            fname = _function_name(node.this, self.sql).lower()
            cols = self.tvfs.get(fname)
            src = Source((alias or fname).lower(), fname, "function", node, None,
                         {c: c for c in cols} if cols is not None else None)
            self.result.sources.append(src)
            return src
        if isinstance(node, exp.Table):
            name = node.name
            low = name.lower()
            if not node.args.get("db") and low in ctes:
                cte = ctes[low]
                src = Source((alias or name).lower(), name, "cte", node, None, cte.columns)
                self.result.sources.append(src)
                return src
            table = self.schema.table(name)
            db = node.args.get("db")
            if db is not None and db.name.lower() not in ("main", "temp"):
                table = None
            kind = "view" if table is not None and table.origin == "view" else "table"
            src = Source((alias or name).lower(), name, kind if table else "unknown", node,
                         table)
            self.result.sources.append(src)
            if table is None:
                self.result.unknown_tables.append(src)
            return src
        if isinstance(node, (exp.Subquery, exp.Values, *QUERY_TYPES)):
            kind = "values" if isinstance(node, exp.Values) else "derived"
            outputs, _ = self.query(node, block.parent, ctes)
            names = alias_cols or outputs
            src = Source(alias.lower(), alias or f"({kind})", kind, node, None,
                         None if names is None else {n.lower(): n for n in names})
            self.result.sources.append(src)
            return src
        src = Source(alias.lower(), alias, "unknown", node)
        self.result.sources.append(src)
        return src

    def join(self, join: exp.Join, right: Source, left: list[Source], block: Block) -> None:
        assert self.result is not None
        using = join.args.get("using") or []
        names: list[tuple[str, exp.Expression]] = []
        for ident in using:
            name = ident.name if isinstance(ident, (exp.Identifier, exp.Column)) else str(ident)
            names.append((name, ident))
        if (join.args.get("method") or "").upper() == "NATURAL":
            if right.columns is not None or right.table is not None:
                rcols = {n.lower() for n in right.column_names()}
                for s in left:
                    for n in s.column_names():
                        if n.lower() in rcols:
                            block.merged.add(n.lower())
            return
        for name, ident in names:
            low = name.lower()
            block.merged.add(low)
            if right.has(low) is False:
                self.result.using_errors.append((ident, name, right))
            left_has = [s.has(low) for s in left]
            if left and all(h is False for h in left_has):
                self.result.using_errors.append((ident, name, None))
            # USING (c) is an equality between both sides' c: a usable constraint.
            for s in [*left, right]:
                if s.has(low) and s.table is not None:
                    self.result.constraints.append(Constraint(s, low, "=", ident, None))

    # Expressions -----------------------------------------------------------------------
    def expressions(self, node: Any, block: Block, ctes: dict[str, Source]) -> None:
        if isinstance(node, list):
            for n in node:
                self.expressions(n, block, ctes)
            return
        if not isinstance(node, exp.Expression):
            return
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, (*QUERY_TYPES, exp.Subquery)):
                self.query(n, block, ctes)
                continue
            if isinstance(n, exp.Column):
                if not isinstance(n.this, exp.Star):
                    self.column(n, block)
                continue
            if isinstance(n, (exp.Func, exp.Anonymous)):
                self.function(n)
            for value in n.args.values():
                if isinstance(value, exp.Expression):
                    stack.append(value)
                elif isinstance(value, list):
                    stack.extend(v for v in value if isinstance(v, exp.Expression))

    def function(self, node: exp.Expression) -> None:
        assert self.result is not None
        meta = getattr(node, "_meta", None)
        if isinstance(node, exp.Anonymous):
            self.result.functions.append(FunctionCall(node, str(node.this),
                                                      len(node.expressions)))
            return
        if not meta or "start" not in meta:
            return  # made by the parser from syntax (CAST, CASE, operators), not a call
        name = _function_name(node, self.sql)
        # sqlglot normalises some calls (log10(x) becomes a two-argument log), so count the
        # arguments as written in the SQL text.
        count = written_arguments(self.sql, meta["end"] + 1)
        if count is None:
            return  # not followed by an argument list: a keyword such as CURRENT_TIME
        self.result.functions.append(FunctionCall(node, name, count))

    def column(self, node: exp.Column, block: Block) -> None:
        assert self.result is not None
        name = node.name
        qualifier = node.table or None
        ref = ColumnRef(node, name, qualifier)
        self.result.columns.append(ref)
        low = name.lower()
        if qualifier:
            b: Block | None = block
            while b is not None:
                src = b.source(qualifier)
                if src is not None:
                    ref.source = src
                    has = src.has(low)
                    if has is False:
                        ref.status = "unknown"
                    elif src.table is not None:
                        ref.column = src.table.column(low)
                    return
                b = b.parent
            ref.status = "unknown-qualifier"
            return
        b = block
        while b is not None:
            definite = [s for s in b.sources if s.has(low)]
            maybe = [s for s in b.sources if s.has(low) is None]
            if definite:
                if low in _ROWID:
                    ref.source = definite[0]
                    return
                if len(definite) > 1 and low not in b.merged:
                    ref.status = "ambiguous"
                    ref.candidates = definite
                    return
                ref.source = definite[0]
                if definite[0].table is not None:
                    ref.column = definite[0].table.column(low)
                return
            if maybe:
                ref.source = maybe[0]
                return
            if low in b.aliases:
                ref.status = "alias"
                return
            b = b.parent
        ident = node.this
        quoted = isinstance(ident, exp.Identifier) and ident.quoted
        ref.status = "quoted-string" if quoted else "unknown"
        ref.candidates = list(block.sources)

    # Constraints -----------------------------------------------------------------------
    def collect_constraints(self, q: exp.Select) -> None:
        conjuncts: list[exp.Expression] = []
        where = q.args.get("where")
        if where is not None:
            conjuncts.extend(_conjuncts(where.this))
        for join in q.args.get("joins") or []:
            if join.args.get("on") is not None:
                conjuncts.extend(_conjuncts(join.args["on"]))
        for pred in conjuncts:
            self.constraint(pred)

    def constraint(self, pred: exp.Expression) -> None:
        assert self.result is not None
        while isinstance(pred, exp.Paren):
            pred = pred.this
        if isinstance(pred, exp.Escape):
            pred = pred.this
        if isinstance(pred, exp.Or):
            # SQLite's multi-index OR gives a virtual table each branch's constraints in a
            # separate scan, so an OR constrains a column when every branch does.
            assert self.result is not None
            per_branch: list[dict[int, set[str]]] = []
            sources: dict[int, Source] = {}
            for br in _disjuncts(pred):
                start = len(self.result.constraints)
                for conj in _conjuncts(br):
                    self.constraint(conj)
                added = self.result.constraints[start:]
                del self.result.constraints[start:]
                found: dict[int, set[str]] = {}
                for c in added:
                    found.setdefault(id(c.source), set()).add(c.column)
                    sources[id(c.source)] = c.source
                per_branch.append(found)
            for key, src in sources.items():
                sets = [b.get(key, set()) for b in per_branch]
                if all(sets):
                    self.result.or_groups.append((src, sets, pred))
                    for col in set.intersection(*sets):
                        self.result.constraints.append(Constraint(src, col, "or", pred, None))
            return
        if isinstance(pred, exp.In):
            if isinstance(pred.this, exp.Column):
                self._add_constraint(pred.this, "in", pred, None)
            return
        if isinstance(pred, exp.Between):
            if isinstance(pred.this, exp.Column):
                self._add_constraint(pred.this, "between", pred, None)
            return
        if isinstance(pred, _CONSTRAINT_OPS):
            if isinstance(pred, exp.Like) and pred.args.get("negate"):
                return
            left, right = pred.this, pred.expression
            op = type(pred).__name__.lower()
            if isinstance(left, exp.Column):
                self._add_constraint(left, op, pred, right)
            if isinstance(right, exp.Column) and not isinstance(pred, (exp.Like, exp.Glob)):
                self._add_constraint(right, op, pred, left)

    def _add_constraint(self, col: exp.Column, op: str, pred: exp.Expression,
                        value: exp.Expression | None) -> None:
        assert self.result is not None
        for ref in reversed(self.result.columns):
            if ref.node is col:
                if ref.source is not None and ref.source.table is not None:
                    self.result.constraints.append(
                        Constraint(ref.source, col.name.lower(), op, pred, value))
                return


def written_arguments(sql: str, pos: int) -> int | None:
    """Number of arguments in the parenthesised list starting at ``sql[pos:]`` (after
    spaces), counting top-level commas outside strings; None when no list follows."""
    n = len(sql)
    while pos < n and sql[pos] in " \t\r\n":
        pos += 1
    if pos >= n or sql[pos] != "(":
        return None
    depth, count, seen, i = 0, 0, False, pos
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = sql.find(ch, i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == ch:
                j = sql.find(ch, j + 2)
            if j == -1:
                return None
            seen = True
            i = j + 1
            continue
        if ch == "(":
            depth += 1
            if depth > 1:
                seen = True
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return count + (1 if seen else 0)
        elif ch == "," and depth == 1:
            count += 1
        elif depth >= 1 and not ch.isspace():
            seen = True
        i += 1
    return None


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _disjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Or):
        return _disjuncts(node.this) + _disjuncts(node.expression)
    return [node]


def _function_name(node: exp.Expr, sql: str | None = None) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    meta = getattr(node, "_meta", None)
    if meta and "start" in meta and sql is not None:
        return sql[meta["start"]:meta["end"] + 1]
    return node.sql_name() if hasattr(node, "sql_name") else type(node).__name__


def analyze(statement: exp.Expression, schema: Schema, sql: str,
            table_functions: dict[str, tuple[str, ...]]) -> Analysis:
    """Resolve what ``statement`` (parsed from ``sql``) refers to in ``schema``."""
    return _Analyzer(schema, table_functions, sql).run(statement)
