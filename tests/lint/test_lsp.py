"""`osqsdk lsp` spoken to as an editor does: JSON-RPC over the process's stdin/stdout."""

from __future__ import annotations

import json
import queue
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls")


class LspClient:
    """A minimal LSP client: Content-Length framed JSON-RPC over a child's pipes."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "osqsdk", "lsp", "--stdio"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            body = out.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def _next(self, match: Any, timeout: float) -> dict[str, Any]:
        for i, message in enumerate(self.pending):
            if match(message):
                return self.pending.pop(i)
        while True:
            message = self.messages.get(timeout=timeout)
            if match(message):
                return message
            self.pending.append(message)

    def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        self.next_id += 1
        ident = self.next_id
        self.send({"id": ident, "method": method, "params": params})
        reply = self._next(lambda m: m.get("id") == ident and "method" not in m, timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def diagnostics(self, uri: str, timeout: float = 30) -> list[dict[str, Any]]:
        message = self._next(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                             and m["params"]["uri"] == uri, timeout)
        return message["params"]["diagnostics"]


@pytest.fixture
def lsp(tmp_path: Path):
    client = LspClient(tmp_path)
    result = client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(),
                                           "capabilities": {}})
    client.notify("initialized", {})
    client.capabilities = result["capabilities"]
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    _, err = client.proc.communicate(timeout=10)
    assert client.proc.returncode == 0
    if client.proc.stdout is not None:
        client.proc.stdout.close()
    assert b"Traceback" not in err, err.decode()


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def open_doc(lsp: LspClient, path: Path, text: str, language: str = "json") -> str:
    path.write_text(text)
    uri = path.as_uri()
    lsp.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": language, "version": 1, "text": text}})
    return uri


def change(lsp: LspClient, uri: str, text: str, version: int) -> None:
    lsp.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                          "contentChanges": [{"text": text}]})


PACK_LINE = '    "emoji": {"query": "SELECT \'😀\' AS e, nmae FROM processes", "interval": 60}'
PACK = '{\n  // edited in the editor\n  "queries": {\n' + PACK_LINE + "\n  }\n}\n"


def test_capabilities(lsp: LspClient) -> None:
    caps = lsp.capabilities
    assert caps["hoverProvider"] and caps["completionProvider"] and caps["codeActionProvider"]
    assert caps["textDocumentSync"]


def test_diagnostics_sit_on_the_exact_span_in_utf16_and_clear_when_fixed(
        lsp: LspClient, tmp_path: Path) -> None:
    uri = open_doc(lsp, tmp_path / "pack.conf", PACK)
    (diag,) = lsp.diagnostics(uri)
    assert diag["code"] == "OSQ104" and diag["source"] == "osqsdk" and diag["severity"] == 1
    start = PACK_LINE.index("nmae")
    assert diag["range"] == {"start": {"line": 3, "character": utf16(PACK_LINE[:start])},
                             "end": {"line": 3, "character": utf16(PACK_LINE[:start + 4])}}
    assert diag["codeDescription"]["href"].endswith("#osq104")
    change(lsp, uri, PACK.replace("nmae", "name"), 2)
    assert lsp.diagnostics(uri) == []


def test_fleet_yaml_and_sql_files(lsp: LspClient, tmp_path: Path) -> None:
    fleet = ("apiVersion: v1\nkind: query\nspec:\n  name: q\n  query: |\n"
             "    SELECT pid, nmae\n    FROM processes\n")
    uri = open_doc(lsp, tmp_path / "q.yml", fleet, "yaml")
    (diag,) = lsp.diagnostics(uri)
    assert diag["code"] == "OSQ104"
    assert diag["range"]["start"] == {"line": 5, "character": len("    SELECT pid, ")}
    sql_uri = open_doc(lsp, tmp_path / "q.sql", "SELECT * FROM procesess;\n", "sql")
    (diag,) = lsp.diagnostics(sql_uri)
    assert diag["code"] == "OSQ102" or "procesess" in diag["message"]


def test_hover_shows_schema_facts(lsp: LspClient, tmp_path: Path) -> None:
    line = '    "q": {"query": "SELECT pid, name FROM processes WHERE pid = 1", "interval": 60}'
    text = '{\n  "queries": {\n' + line + "\n  }\n}\n"
    uri = open_doc(lsp, tmp_path / "p.conf", text)
    assert lsp.diagnostics(uri) == []
    at = {"line": 2, "character": line.index("processes") + 3}
    table = lsp.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": at})
    value = table["contents"]["value"]
    assert "**processes**" in value and "Platforms:" in value and "Columns:" in value
    at = {"line": 2, "character": line.index("pid") + 1}
    column = lsp.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": at})
    assert column["contents"]["value"].startswith("**processes.pid** `")
    at = {"line": 2, "character": line.index('"interval"') + 2}  # outside any query
    assert lsp.request("textDocument/hover", {"textDocument": {"uri": uri},
                                              "position": at}) is None


def test_completion_of_tables_and_columns(lsp: LspClient, tmp_path: Path) -> None:
    line = '    "q": {"query": "SELECT  FROM processes WHERE uid = 0", "interval": 60}'
    text = '{\n  "queries": {\n' + line + "\n  }\n}\n"
    uri = open_doc(lsp, tmp_path / "p.conf", text)
    lsp.diagnostics(uri)
    at = {"line": 2, "character": line.index("SELECT ") + 7}
    got = lsp.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": at})
    labels = {item["label"] for item in got["items"]}
    assert {"pid", "name", "cmdline"} <= labels and "users" not in labels
    at = {"line": 2, "character": line.index("processes") + 3}
    got = lsp.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": at})
    labels = {item["label"] for item in got["items"]}
    assert {"processes", "process_open_sockets", "users"} <= labels


def test_code_action_applies_the_safe_fix(lsp: LspClient, tmp_path: Path) -> None:
    line = '    "q": {"query": "SELECT uid FROM users WHERE shell = \\"/bin/sh\\"", "interval": 60}'
    text = '{\n  "queries": {\n' + line + "\n  }\n}\n"
    uri = open_doc(lsp, tmp_path / "p.conf", text)
    (diag,) = lsp.diagnostics(uri)
    assert diag["code"] == "OSQ108"
    actions = lsp.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"],
        "context": {"diagnostics": [diag]}})
    (action,) = [a for a in actions if a.get("isPreferred")]
    (edit,) = action["edit"]["changes"][uri]
    lines = text.split("\n")
    row = lines[edit["range"]["start"]["line"]]
    row = row[:edit["range"]["start"]["character"]] + edit["newText"] + \
        row[edit["range"]["end"]["character"]:]
    assert row == line.replace('\\"/bin/sh\\"', "'/bin/sh'")
    lines[edit["range"]["start"]["line"]] = row
    change(lsp, uri, "\n".join(lines), 2)
    assert lsp.diagnostics(uri) == []


def test_broken_json_while_typing_is_a_diagnostic_not_a_crash(lsp: LspClient,
                                                               tmp_path: Path) -> None:
    uri = open_doc(lsp, tmp_path / "p.conf", '{"queries": {"q": {"query": "SELECT 1"')
    diags = lsp.diagnostics(uri)
    assert [d["code"] for d in diags] == ["OSQ002"]
    lsp.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert lsp.diagnostics(uri) == []


def test_a_bom_is_read_as_the_cli_reads_it(lsp: LspClient, tmp_path: Path) -> None:
    text = '\ufeff{"queries": {"q": {"query": "SELECT nmae FROM processes", "interval": 60}}}\n'
    uri = open_doc(lsp, tmp_path / "bom.conf", text)
    (diag,) = lsp.diagnostics(uri)
    assert diag["code"] == "OSQ104"  # not "invalid JSON"
    assert diag["range"]["start"] == {"line": 0, "character": text.index("nmae")}


def test_quick_edits_are_linted_once_with_the_newest_text(lsp: LspClient,
                                                         tmp_path: Path) -> None:
    uri = open_doc(lsp, tmp_path / "p.conf", PACK)
    lsp.diagnostics(uri)
    frames = b""
    for version in range(2, 12):  # ten edits in one write, the last one fixes the typo
        body = json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"text": PACK if version < 11 else
                                PACK.replace("nmae", "name")}]}}).encode()
        frames += b"Content-Length: %d\r\n\r\n" % len(body) + body
    assert lsp.proc.stdin is not None
    assert len(frames) <= select.PIPE_BUF  # one write the server reads whole, however busy
    lsp.proc.stdin.write(frames)
    lsp.proc.stdin.flush()
    published = [lsp.diagnostics(uri, timeout=60)]
    while True:  # and nothing after it
        try:
            published.append(lsp.diagnostics(uri, timeout=3))
        except queue.Empty:
            break
    assert published == [[]], published


def test_a_message_counts_as_unhandled_from_its_first_line_until_the_next_is_asked_for(
        ) -> None:
    import os

    from osqsdk.lint._lsp import _Stdin

    read_end, write_end = os.pipe()
    try:
        stdin = _Stdin(read_end)
        assert not stdin.pending()
        os.write(write_end, b"Content-Length: 2\r\n")  # a client that writes the header first
        assert stdin.readline() == b"Content-Length: 2\r\n"
        assert stdin.pending()  # the body is still to come: a lint must wait
        os.write(write_end, b"\r\n{}Content-Length: 2\r\n\r\n{}")
        assert stdin.readline() == b"\r\n" and stdin.pending()
        assert stdin.read(2) == b"{}" and stdin.pending()  # read, not yet handled
        assert stdin.readline() == b"Content-Length: 2\r\n"  # pygls asks for the next one
        assert stdin.pending()  # ... which has begun
        assert stdin.readline() == b"\r\n" and stdin.read(2) == b"{}"
        os.write(write_end, b"Content-Length: 2\r\n")
        assert stdin.readline() == b"Content-Length: 2\r\n" and stdin.pending()
        os.close(write_end)
        write_end = -1
        assert stdin.readline() == b"" and stdin.read(2) == b""  # the client went away
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
