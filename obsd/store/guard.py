"""The statement guard for user SQL: only reads, no files, no network, no settings of its own.

`readonly = 1` is not enough on its own. In the embedded engine `INTO OUTFILE` is carried out by
the client side of clickhouse-local, so `SELECT 1 INTO OUTFILE '/path'` writes the file; the
`file()` function reads any file the process can; several statements separated by `;` all run;
and a `SETTINGS` clause inside a subquery is accepted. The guard therefore checks the statement as
ClickHouse's own parser formats it (`formatQuerySingleLine`: comments gone, one statement, keywords
upper-cased, string literals and identifiers in one quoting style), and obsd runs exactly that
text, so what was checked is what runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from obsd.errors import QueryError

ALLOWED_STATEMENTS = ("SELECT", "WITH", "DESCRIBE", "SHOW", "EXPLAIN")
# Table functions that read nothing outside the engine's own tables: everything else the engine
# lists in system.table_functions (file, url, s3, remote, mysql, postgresql, hdfs, executable,
# input, and whatever a newer engine adds) is refused wherever it is called.
SAFE_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "primes", "values",
    "view", "merge", "null", "generaterandom", "format", "loop",
})
# Ordinary functions (not table functions) that read files on the server.
FILE_FUNCTIONS = frozenset({"file", "catboostevaluate", "modelevaluate", "evalmlmethod"})
# Known table functions that touch files or the network, refused even before the engine's list is
# known (and on an engine that does not list them).
NETWORK_TABLE_FUNCTIONS = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "azureblobstorage",
    "azureblobstoragecluster", "hdfs", "hdfscluster", "remote", "remotesecure", "cluster", "clusterallreplicas",
    "mysql", "postgresql", "sqlite", "mongodb", "redis", "odbc", "jdbc", "executable", "input", "iceberg",
    "icebergs3", "icebergazure", "iceberghdfs", "iceberglocal", "deltalake", "deltalakeazure", "deltalakelocal",
    "hudi", "python", "arrowflight", "ytsaurus", "dictionary",
})
_EXPLAIN_KINDS = frozenset({"AST", "SYNTAX", "QUERY", "TREE", "PLAN", "PIPELINE", "ESTIMATE", "TABLE", "OVERRIDE"})
_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_$]*|\S""", re.S)


class QueryRefused(QueryError):
    """A statement the query API does not run; the message says which part and why."""

    exit_code = 2


def _name(token: str) -> str | None:
    """The identifier a token spells (quoted or not), or None for strings, numbers and punctuation."""
    if token[0] in "`\"" and len(token) >= 2:
        return token[1:-1].replace("\\" + token[0], token[0])
    return token if token[0].isalpha() or token[0] == "_" else None


class StatementGuard:
    """Checks a statement in ClickHouse's formatted form; raises QueryRefused with a reason."""

    def __init__(self, table_functions: Iterable[str] = ()) -> None:
        listed = {n.lower() for n in table_functions}
        self.denied = frozenset((listed | NETWORK_TABLE_FUNCTIONS | FILE_FUNCTIONS) - SAFE_TABLE_FUNCTIONS)

    def check(self, formatted: str) -> None:
        """Refuse anything but one read-only statement without files, network, OUTFILE or SETTINGS."""
        tokens = _TOKEN.findall(formatted)
        if not tokens:
            raise QueryRefused("the statement is empty; send one SELECT, WITH, DESCRIBE, SHOW or EXPLAIN")
        self._check_start(tokens)
        for i, tok in enumerate(tokens):
            prev = tokens[i - 1] if i else ""
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if tok == ";":
                raise QueryRefused("one statement per query: remove the ';' and what follows it")
            name = _name(tok)
            if name is None:
                continue
            # The formatter writes keywords upper-case and identifiers as given (quoted when needed),
            # so a clause is told from a column or alias of the same name by its neighbours.
            if tok == "OUTFILE" and prev == "INTO":
                raise QueryRefused("INTO OUTFILE writes a file on the server; the query API only returns rows")
            if tok == "SETTINGS" and i + 2 < len(tokens) and tokens[i + 2] == "=":
                raise QueryRefused("SETTINGS clauses are not accepted: the query limits are set by obsd "
                                   "(clickhouse.query_* settings)")
            if tok == "FORMAT" and prev != "AS" and nxt not in ("", "(", ",") and _name(nxt) is not None:
                raise QueryRefused("FORMAT clauses are not accepted: obsd chooses the format "
                                   "(`obsd query --format json|csv` formats the rows)")
            if nxt == "(" and name.lower() in self.denied:
                raise QueryRefused(f"{name}() reads files, other servers or the network; the query API "
                                   "reads obsd's own tables only")

    def _check_start(self, tokens: list[str]) -> None:
        first = tokens[0].upper()
        if first not in ALLOWED_STATEMENTS:
            raise QueryRefused(f"only read-only statements are allowed ({', '.join(ALLOWED_STATEMENTS)}), "
                               f"not {tokens[0][:40]}")
        if first != "EXPLAIN":
            return
        i = 1
        while i < len(tokens):
            word = tokens[i].upper()
            if word in _EXPLAIN_KINDS:
                i += 1
            elif i + 2 < len(tokens) and tokens[i + 1] == "=":  # an EXPLAIN option: name = value [,]
                i += 4 if i + 3 < len(tokens) and tokens[i + 3] == "," else 3
            else:
                break
        explained = tokens[i].upper() if i < len(tokens) else ""
        if explained not in {"SELECT", "WITH", "DESCRIBE", "SHOW", "("}:
            raise QueryRefused("EXPLAIN is allowed for read-only statements only "
                               f"({', '.join(ALLOWED_STATEMENTS[:-1])})")
