"""The storyboard: one self-contained HTML page of what a script would render and cost
(`klingspec preview`). A wing: the core never imports it.

`storyboard.py` turns a pipeline `Result` into the page's figures (money from `pricing`,
diagnostics through `printing`) and renders `storyboard.html.j2` with Jinja2, autoescaped;
`thumbnails.py` makes the small copies of local images the page inlines (Pillow).
"""
