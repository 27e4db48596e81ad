"""Language-server latency: from a `didChange` to the diagnostics published for it.

Starts `klingspec lsp` as a real process and drives it over stdio with pygls's own
client, on a 15-shot script (templates, bindings, a `use`d library). Each edit changes
one prompt (every other edit mentions an unbound name, so the diagnostics differ) and
the time is taken until `publishDiagnostics` arrives for that document version.
Edits are spaced past the 50 ms debounce window so each one is checked at once, as
when typing pauses; a burst of edits typed faster than that is measured separately
(how many checks run, and the wait for the last edit's diagnostics). Goal: median
under 20 ms.

Run: python bench/bench_lsp.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

LIBRARY = """\
let look = "35mm film grain, handheld, golden hour"
element ada {
  front "https://assets.example.com/ada/front.png"
  refs  "https://assets.example.com/ada/left.png"
}
image tram = "https://assets.example.com/tram.jpg"
"""


def script(edit: int) -> str:
    lines = ['use "lib.kvs"', "aspect 16:9", 'let city = "Lisbon"', 'let palette = ["ochre", "tile blue"]']
    for i in range(15):
        who = "@ada" if not (i == edit % 15 and edit % 2) else "@adda"
        lines.append(
            f'shot s{i} 1s "{who} rides @tram through {{{{ city }}}} in {{{{ palette[0] }}}}, '
            f'take {edit}, {{{{ look }}}}"'
        )
    return "\n".join(lines) + "\n"


async def main() -> None:
    rounds = 30 if "--quick" in sys.argv else 100
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "lib.kvs").write_text(LIBRARY, encoding="utf-8")
        path = folder / "scene.kvs"
        path.write_text(script(0), encoding="utf-8")
        uri = path.as_uri()
        client = LanguageClient("bench", "1")
        arrived: dict[int, float] = {}
        got = asyncio.Event()

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: lsp.PublishDiagnosticsParams) -> None:
            if params.uri == uri and params.version is not None:
                arrived.setdefault(params.version, time.perf_counter())
                got.set()

        await client.start_io(sys.executable, "-m", "klingspec", "lsp")
        await client.initialize_async(lsp.InitializeParams(lsp.ClientCapabilities(), root_uri=folder.as_uri()))
        client.initialized(lsp.InitializedParams())
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "kvs", 1, script(0))))

        async def wait_for(version: int) -> float:
            while version not in arrived:
                got.clear()
                await asyncio.wait_for(got.wait(), 10)
            return arrived[version]

        await wait_for(1)
        latencies = []
        for version in range(2, rounds + 2):
            await asyncio.sleep(0.06)  # past the debounce window: a pause in typing
            start = time.perf_counter()
            client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    lsp.VersionedTextDocumentIdentifier(version, uri),
                    [lsp.TextDocumentContentChangeWholeDocument(script(version))],
                )
            )
            latencies.append(await wait_for(version) - start)
        ms = sorted(x * 1000 for x in latencies)
        median = statistics.median(ms)
        print(
            f"didChange -> publishDiagnostics, 15-shot script, {rounds} edits: "
            f"median {median:.1f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.1f} ms, worst {ms[-1]:.1f} ms "
            f"(goal: median < 20 ms) {'OK' if median < 20 else 'SLOW'}"
        )

        # a burst: 20 edits 5 ms apart (faster than anyone types)
        await asyncio.sleep(0.1)
        first = rounds + 2
        before = len(arrived)
        for version in range(first, first + 20):
            client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    lsp.VersionedTextDocumentIdentifier(version, uri),
                    [lsp.TextDocumentContentChangeWholeDocument(script(version))],
                )
            )
            last = time.perf_counter()
            await asyncio.sleep(0.005)
        done = await wait_for(first + 19)
        await asyncio.sleep(0.1)
        print(
            f"burst of 20 edits 5 ms apart: {len(arrived) - before} checks published, "
            f"last edit's diagnostics after {(done - last) * 1000:.1f} ms (debounce {50} ms included)"
        )

        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()


if __name__ == "__main__":
    asyncio.run(main())
