"""Editor features as plain data: what the language server shows, computed from a `Result`.

`server.py` is a thin pygls adapter; everything an editor asks (where is this defined,
what does this shot cost, what can follow this `@`) is answered here in terms of the
pipeline's own values: `Span`s (code-point offsets), strings and small dataclasses. That
keeps LSP types and UTF-16 out of the language logic, and lets these functions be tested
without a client.

Modules: `symbols` (definitions and references of bindings and `let`s), `hovers`,
`completions`, `fixes` (quick fixes), `outline` (document symbols).
"""
