"""Fixtures for the language-server tests: a real `klingspec lsp` process over stdio.

The `client` fixture is parametrized over editor capability profiles shipped with
pytest-lsp (VS Code, Neovim, Emacs), so every test runs against each; they also differ
in the position encoding they offer, so positions are checked in UTF-16, UTF-8 and
UTF-32. `client.encoding` is the one the server chose. One server per profile
and module keeps the suite fast; tests open documents under their own names so they do
not see each other's buffers.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# VS Code offers no position encoding (so UTF-16), Neovim 0.11 prefers UTF-8, Emacs UTF-32
PROFILES = ["visual_studio_code", "neovim", "emacs"]
SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "klingspec", "lsp"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of examples/ (with lib/), so tests may write next to the scripts."""
    folder = tmp_path_factory.mktemp("ws")
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    return folder


@pytest_lsp.fixture(config=SERVER, params=PROFILES, scope="module")
async def client(request, lsp_client: LanguageClient, workspace: Path):
    root = workspace.as_uri()
    result = await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities(request.param),
            root_uri=root,
            workspace_folders=[lsp.WorkspaceFolder(root, "ws")],
        )
    )
    lsp_client.encoding = result.capabilities.position_encoding or lsp.PositionEncodingKind.Utf16
    yield
    await lsp_client.shutdown_session()


async def open_document(client: LanguageClient, path: Path, text: str | None = None) -> list[lsp.Diagnostic]:
    """didOpen `path` (with `text`, else its content) and return its first diagnostics."""
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri, "kvs", 1, path.read_text(encoding="utf-8") if text is None else text)
        )
    )
    return await diagnostics(client, uri)


async def change_document(
    client: LanguageClient, uri: str, version: int, text: str, range_: lsp.Range | None = None
) -> list[lsp.Diagnostic]:
    """didChange (the whole text, or `text` at `range_`) and return the new diagnostics."""
    client.diagnostics.pop(uri, None)
    change = (
        lsp.TextDocumentContentChangeWholeDocument(text)
        if range_ is None
        else lsp.TextDocumentContentChangePartial(range_, text)
    )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(version, uri), [change])
    )
    return await diagnostics(client, uri)


async def diagnostics(client: LanguageClient, uri: str, timeout: float = 10.0) -> list[lsp.Diagnostic]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while uri not in client.diagnostics:
        if loop.time() > deadline:
            raise AssertionError(f"no diagnostics for {uri} within {timeout} s")
        await asyncio.sleep(0.005)
    return list(client.diagnostics[uri])


def units(text: str, encoding: str) -> int:
    """How many characters LSP counts for `text` in `encoding` (independent of the server)."""
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def position(text: str, needle: str, delta: int = 0, encoding: str = "utf-16") -> lsp.Position:
    """The LSP position of `needle` (plus `delta` characters) in `text`."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return lsp.Position(line, units(text[text.rfind("\n", 0, offset) + 1 : offset], encoding))


def close_document(client: LanguageClient, path: Path) -> None:
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(path.as_uri())))
