"""The language server under hostile input: every request with mistyped params gets a
JSON-RPC error answer (pygls dropped it, leaving the editor waiting), and a document
with a template bomb or a megabyte-long literal is checked and answered, not fatal."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest
from lsprotocol import types as lsp

from tests.lsp.conftest import open_document


class RawClient:
    """`klingspec lsp` over stdio with hand-written JSON-RPC: a typed client (pytest-lsp)
    cannot send params that do not match the specification."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "klingspec", "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.buffer = b""

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def answer(self, request_id: int, timeout: float = 20.0) -> dict:
        """The response to `request_id` (other messages are skipped)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n\r\n" in self.buffer:
                head, rest = self.buffer.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if len(rest) < length:
                    break
                message, self.buffer = json.loads(rest[:length]), rest[length:]
                if message.get("id") == request_id and "method" not in message:
                    return message
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to request {request_id}"
            if select.select([self.process.stdout], [], [], left)[0]:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, "the server exited"
                self.buffer += chunk

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def raw(tmp_path):
    client = RawClient()
    client.send({"id": 1, "method": "initialize", "params": {"capabilities": {}, "processId": None}})
    client.answer(1)
    client.send({"method": "initialized", "params": {}})
    uri = (tmp_path / "scene.kvs").as_uri()
    client.send(
        {
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "kvs", "version": 1, "text": 'shot a 5s "x"\n'}},
        }
    )
    yield client, uri
    client.close()


@pytest.mark.parametrize(
    ("method", "position"),
    [
        ("textDocument/hover", "oops"),
        ("textDocument/completion", {"line": "a", "character": 2}),
        ("textDocument/definition", None),
    ],
)
def test_a_request_with_mistyped_params_gets_an_error_answer(raw, method, position):
    client, uri = raw
    client.send({"id": 2, "method": method, "params": {"textDocument": {"uri": uri}, "position": position}})
    error = client.answer(2)["error"]
    assert error["code"] == -32602  # invalid params
    assert method in error["message"]
    # and the server still answers a well-formed request
    client.send(
        {
            "id": 3,
            "method": "textDocument/hover",
            "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 1}},
        }
    )
    assert client.answer(3)["result"] is not None


@pytest.mark.parametrize(
    "text",
    [
        "shot a 5s \"{{ ('x' * 90000) | replace('x', 'x' * 90000) }}\"\n",
        'shot a 5s "{{ ((((9 ** 64) ** 64) ** 64) ** 64) ** 64 }}"\n',
        'shot a 5s "{{ ' + "(" * 200 + "1" + ")" * 200 + ' }}"\n',
        'shot a 5s "' + "word " * 400_000 + '"\n',
    ],
    ids=["replace", "power", "nesting", "long-literal"],
)
@pytest.mark.asyncio(loop_scope="module")
async def test_the_server_survives_the_files_that_bomb_a_check(client, workspace, text):
    path = workspace / "hostile-bomb.kvs"
    found = await open_document(client, path, text)
    assert {d.code for d in found} & {"KVS-template-limit", "KVS-prompt-length"}
    assert all(d.code != "KVS-internal" for d in found)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), lsp.Position(0, 1))
    )
    assert hover is not None
