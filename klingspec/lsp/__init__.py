"""The editor wing: the language server (`server`, a thin pygls adapter) and the editor
features it serves, computed as plain data from the pipeline's `Result`.

Everything an editor asks (where is this defined, what does this shot cost, what can follow
this `@`, which image files are beside the script) is answered by `symbols`, `hovers`,
`completions`, `fixes` (quick fixes), `outline` (document symbols) and `paths` (local image
files) in terms of the pipeline's own values: `Span`s (code-point offsets), strings and
small dataclasses. LSP types and UTF-16 stay in `server`, and these functions can be tested
without a client. Nothing in the language core imports this package.
"""
