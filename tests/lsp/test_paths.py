"""Local image paths in the editor: completion from the filesystem, go to definition
opens the file, hover shows what the file holds and the URL it is sent as."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types as lsp
from PIL import Image

from tests.lsp.conftest import open_document, position

pytestmark = pytest.mark.asyncio(loop_scope="module")


def png(path: Path, size: tuple[int, int] = (320, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 90, 160)).save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def pics(workspace: Path) -> Path:
    """A folder of files beside the scripts: images, other files, a hidden one, a subfolder."""
    folder = workspace / "pics"
    png(folder / "hero.png")
    Image.new("RGB", (400, 300), (200, 120, 40)).save(folder / "Cafe.JPG", "JPEG")
    png(folder / "sub" / "deep.png")
    png(folder / ".secret.png")
    png(folder / 'say "hi".png')
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    # the header of a large image, cut short: completion reads headers only, so it still knows it
    whole = png(folder / "big.png", (4000, 3000))
    whole.write_bytes(whole.read_bytes()[:200])
    return folder


async def complete(client, path: Path, text: str, encoding: str) -> list[lsp.CompletionItem]:
    """Open `path` with `text` and complete at its end."""
    await open_document(client, path, text)
    found = await client.text_document_completion_async(
        lsp.CompletionParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, text, len(text), encoding))
    )
    return found.items if isinstance(found, lsp.CompletionList) else found


async def test_folder_entries_complete_in_an_image_path(client, workspace, pics):
    text = 'image hero = "pics/'
    items = await complete(client, workspace / "paths_image.kvs", text, client.encoding)
    assert [i.label for i in items] == ["sub/", "big.png", "Cafe.JPG", "hero.png", 'say "hi".png']
    by_label = {i.label: i for i in items}
    assert by_label["sub/"].kind == lsp.CompletionItemKind.Folder
    hero = by_label["hero.png"]
    assert hero.kind == lsp.CompletionItemKind.File
    assert hero.detail == f"PNG 320x200, {(pics / 'hero.png').stat().st_size:,} bytes"
    assert by_label["Cafe.JPG"].detail.startswith("JPEG 400x300, ")
    assert by_label["big.png"].detail == "PNG 4000x3000, 200 bytes"
    assert by_label['say "hi".png'].text_edit.new_text == 'say \\"hi\\".png'
    end = position(text, text, len(text), client.encoding)
    assert hero.text_edit.range == lsp.Range(end, end)


async def test_only_the_segment_being_typed_is_replaced(client, workspace, pics):
    text = 'aspect 16:9\nstart "pics/sub/de'
    items = await complete(client, workspace / "paths_frame.kvs", text, client.encoding)
    assert [i.label for i in items] == ["deep.png"]
    assert items[0].text_edit.range == lsp.Range(
        position(text, "de", 0, client.encoding), position(text, "de", 2, client.encoding)
    )
    assert items[0].text_edit.new_text == "deep.png"


async def test_element_views_and_refs_lists_complete_too(client, workspace, pics):
    text = 'element hero {\n  front "pics/hero.png"\n  refs  "pics/hero.png",\n        "pics/'
    items = await complete(client, workspace / "paths_refs.kvs", text, client.encoding)
    assert "hero.png" in [i.label for i in items]
    text = 'element hero { front "'
    items = await complete(client, workspace / "paths_front.kvs", text, client.encoding)
    assert "pics/" in [i.label for i in items]


async def test_hidden_entries_only_once_a_dot_is_typed(client, workspace, pics):
    items = await complete(client, workspace / "paths_dot.kvs", 'image a = "pics/.', client.encoding)
    assert ".secret.png" in [i.label for i in items]
    items = await complete(client, workspace / "paths_nodot.kvs", 'image a = "pics/', client.encoding)
    assert ".secret.png" not in [i.label for i in items]


async def test_gif_is_offered_where_the_model_takes_it(client, workspace, pics):
    default = await complete(client, workspace / "paths_gif.kvs", 'image a = "pics/', client.encoding)
    assert "anim.gif" not in [i.label for i in default]
    text = 'model kling-video-v2-6-pro-image-to-video\nstart "pics/'
    items = await complete(client, workspace / "paths_gif2.kvs", text, client.encoding)
    assert "anim.gif" in [i.label for i in items]


@pytest.mark.parametrize(
    "text",
    [
        'image a = "https://',
        'image a = "data:image/png',
        'image a = "//cdn.example.com/',
        'shot a 5s "pics/',  # a prompt is not a path
        'image a = "{{ folder }}/',
        'negative "pics/',
    ],
)
async def test_no_paths_outside_a_local_uri(client, workspace, pics, text):
    items = await complete(client, workspace / "paths_none.kvs", text, client.encoding)
    assert not any(i.kind in (lsp.CompletionItemKind.File, lsp.CompletionItemKind.Folder) for i in items), [
        i.label for i in items
    ]


async def test_go_to_definition_opens_the_image_file(client, workspace, pics):
    path = workspace / "paths_def.kvs"
    text = 'assets aurora/refs\nimage hero = "pics/hero.png"\nimage gone = "pics/gone.png"\nshot 5s "@hero, @gone"\n'
    await open_document(client, path, text)
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "hero.png", 2, client.encoding))
    )
    zero = lsp.Position(0, 0)
    assert [(loc.uri, loc.range) for loc in found] == [((pics / "hero.png").as_uri(), lsp.Range(zero, zero))]
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "gone.png", 2, client.encoding))
    )
    assert not found  # a missing file has nowhere to go


async def test_hover_on_a_local_image_shows_type_size_and_url(client, workspace, pics):
    from klingspec.pipeline import run_pipeline

    path = workspace / "paths_hover.kvs"
    text = 'assets aurora/refs\nimage hero = "pics/hero.png"\nshot 5s "@hero waves"\n'
    path.write_text(text, encoding="utf-8")
    await open_document(client, path, text)
    url = run_pipeline(str(path)).uploads[0].url
    size = (pics / "hero.png").stat().st_size
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "hero.png", 1, client.encoding))
    )
    value = found.contents.value
    assert value.startswith(f"**pics/hero.png** · PNG · 320x200 px · {size:,} bytes")
    assert "uploaded by its content to `aurora/refs@main`" in value and url in value
    assert found.range == lsp.Range(
        position(text, '"pics/hero', 0, client.encoding), position(text, 'png"', 4, client.encoding)
    )
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "@hero", 2, client.encoding))
    )
    assert f"(PNG 320x200, {size:,} bytes) → {url}" in found.contents.value


async def test_hover_on_a_missing_image_says_so(client, workspace, pics):
    path = workspace / "paths_missing.kvs"
    text = 'assets aurora/refs\nimage hero = "pics/nobody.png"\nshot 5s "@hero waves"\n'
    await open_document(client, path, text)
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "nobody", 1, client.encoding))
    )
    assert found.contents.value.startswith("**pics/nobody.png**: no such file: ")
    assert "`KVS-image-not-found`" in found.contents.value
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, "@hero", 2, client.encoding))
    )
    assert "pics/nobody.png (no such file: " in found.contents.value
