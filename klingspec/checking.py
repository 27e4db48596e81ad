"""Checking: every rule of the video API, as a table of small rules.

Each rule is a function `(BoundScript, Model) -> Iterator[Diagnostic]` with one code;
`RULES` lists them all and `check` runs every one, so one run reports every problem.
Numbers, enums and prices come from the model's capability matrix (`targets.py`); where
a rule mirrors an error the API would return, its help quotes the API's own words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from klingspec import ast, media_urls
from klingspec.assets import OXEN_NAME, is_local_path, parse_target
from klingspec.binding import FORMAT_WORDS, ON_WORDS, BoundScript, SettingValue
from klingspec.diagnostics import Diagnostic, Related, Suggestion, close_matches
from klingspec.source import Span
from klingspec.targets import DEFAULT_MODEL, Model, default_model_id, known_ids
from klingspec.targets import model as lookup_model

if TYPE_CHECKING:
    from klingspec.images import ImageFile

Rule = Callable[[BoundScript, Model], Iterator[Diagnostic]]


def _s(n: Decimal | int) -> str:
    return f"{n} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- model and settings ----------------------------------------------------------


def _model_span(script: BoundScript) -> Span | None:
    """Where the model is chosen: its setting, else the first shot (the model a script
    gets by default, or that `plan --compare` tries, has no line of its own)."""
    setting = script.settings.get("model")
    return setting.span if setting else script.shots[0].shot.span if script.shots else None


def model_known(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("model")
    tried, span = script.model_override, _model_span(script)
    if tried is not None:  # `plan --compare`: the model tried is the one to know
        if lookup_model(tried) is None and span is not None:
            yield Diagnostic.of("KVS-model-unknown", span, f"unknown model `{tried}`", "see `klingspec models`")
        return
    if setting and lookup_model(setting.raw) is None:
        typo = _typo_of(setting.raw)
        written = _written(setting)
        if typo is not None:
            yield Diagnostic.of(
                "KVS-model-unknown",
                setting.span,
                f"unknown model `{setting.raw}`",
                f"did you mean `{typo}`?",
                suggestions=[Suggestion.did_you_mean(written, typo)] if written else [],
            )
            return
        within = [i for i in known_ids() if setting.raw.lower() in i]  # `kling-video-o3-pro` names three
        listed = _priced_first(within if len(within) > 1 else known_ids())
        yield Diagnostic.of(
            "KVS-model-unknown",
            setting.span,
            f"unknown model `{setting.raw}`",
            (f"`{setting.raw}` is part of several model ids: " if len(within) > 1 else "known models: ")
            + ", ".join(f"`{model_id}` ({_price(model_id)})" for model_id in listed),
        )


def _typo_of(written: str) -> str | None:
    """The one known id `written` is a slip of the keys of (two edits at most, and no
    other id as near), or None: a guess between several would be a guess."""
    near = [(_edits(written.lower(), model_id), model_id) for model_id in known_ids()]
    best = sorted(d for d, _ in near)
    if not best or best[0] > 2 or (len(best) > 1 and best[1] <= best[0] + 1):
        return None
    return next(model_id for d, model_id in near if d == best[0])


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _priced_first(ids: Sequence[str]) -> list[str]:
    """`ids` with the models that publish a price first (in their order), unpriced last."""
    priced = [i for i in ids if (m := lookup_model(i)) is not None and m.price_per_second is not None]
    return priced + [i for i in ids if i not in priced]


def _price(model_id: str) -> str:
    known = lookup_model(model_id)
    price = known.price_per_second if known is not None else None
    return f"${price}/s" if price is not None else "no published price"


def model_retired(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    """A model the synced catalogue lacks or marks deprecated (or, with no sync, that the
    built-in matrix calls retired) may no longer run: say so, with its successor."""
    setting = script.settings.get("model")
    if model.status != "retired" or lookup_model(script.model_id) is not model:
        return
    if not setting:  # the default, retired with its successor: no line to fix, so the first shot
        if script.shots and script.model_override is None:
            yield Diagnostic.of(
                "KVS-model-retired",
                script.shots[0].shot.span,
                f"the default model `{model.id}` is retired: {model.status_note or 'the catalogue no longer lists it'}",
                "name a model `klingspec models` lists as live with a `model` line",
            )
        return
    written = _written(setting)
    successor = model.replaced_by
    yield Diagnostic.of(
        "KVS-model-retired",
        setting.span,
        f"`{model.id}` is retired: {model.status_note or 'the catalogue no longer lists it'}",
        f"use its successor `{successor}`" if successor else "choose a model `klingspec models` lists as live",
        suggestions=[Suggestion(written, successor, f"Use `{successor}`", preferred=True)]
        if successor and written
        else [],
    )


def _written(setting: SettingValue) -> Span | None:
    """Where a setting's value is written just as it reads (a word, or a string without
    templates or escapes): the span a suggestion may replace. None where that is not sure."""
    value = setting.statement.value
    span = value.content_span if isinstance(value, ast.Text) else value.span
    return span if span.text == setting.raw else None


def model_requirements(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    span = _model_span(script)
    if span is not None and model.requires:
        yield Diagnostic.of(
            "KVS-model-unsupported",
            span,
            f"`{model.id}` needs {', '.join(model.requires)}, which a .kvs script cannot give yet",
            f"use `{DEFAULT_MODEL}` for reference-conditioned shots",
        )
    if len(script.shots) > 1 and not model.multi_prompt:
        other = _multi_shot_model()
        yield Diagnostic.of(
            "KVS-model-unsupported",
            script.shots[1].shot.span,
            f"`{model.id}` takes a single prompt, but the script has {len(script.shots)} shots",
            "its published request schema has no `multi_prompt` (Oxen documents no way to send several "
            "shots to it); merge the shots into one"
            + (f", or use a multi-shot model such as `{other}`" if other else ""),
        )
    refused = _refused_bindings(script, model)
    if script.images and script.elements and len(refused) == len(script.images) + len(script.elements):
        first, *rest = refused  # neither kind is taken: one error for both, not one per kind
        yield Diagnostic.of(
            "KVS-model-unsupported",
            first.span,
            f"`{model.id}` takes no reference images or elements",
            f"remove the `image` and `element` declarations, or choose `{DEFAULT_MODEL}`",
            related=[Related(other.name.span, "also refused") for other in rest],
        )
    features = [
        (
            script.images and not model.input_image and not (script.elements and not model.elements),
            script.images[0].declaration.span if script.images else None,
            "reference images (`image`)",
        ),
        (
            script.elements and not model.elements and not (script.images and not model.input_image),
            script.elements[0].declaration.span if script.elements else None,
            "elements",
        ),
        (script.start and not model.frames, script.start.span if script.start else None, "a start frame"),
        (script.end and not model.tail_frame, script.end.span if script.end else None, "an end frame"),
    ]
    for unsupported, span, what in features:
        if unsupported:
            assert span is not None  # each feature has a span when it is present
            yield Diagnostic.of(
                "KVS-model-unsupported",
                span,
                f"`{model.id}` does not take {what}",
                f"remove it, or choose `{DEFAULT_MODEL}`",
            )
    for key, supported, what, field in (
        ("audio", model.audio, "generated audio", "generate_audio"),
        ("negative", model.negative_prompt, "a negative prompt", "negative_prompt"),
        ("aspect", bool(model.aspect_ratios), "an aspect ratio", "aspect_ratio"),
        ("resolution", bool(model.resolutions), "a resolution", "resolution"),
    ):
        setting = script.settings.get(key)
        if setting and not supported and not (key == "audio" and ON_WORDS.get(setting.raw.lower()) is False):
            hint = f"its published request schema has no `{field}`; remove this setting"
            if key == "negative":
                hint += " (say what to avoid in the prompt itself)"
            yield Diagnostic.of(
                "KVS-model-unsupported",
                setting.statement.span,
                f"`{model.id}` does not take {what}",
                hint,
                suggestions=[_delete_line(setting.statement)],
            )


def _refused_bindings(script: BoundScript, model: Model) -> list[ast.Image | ast.Element]:
    """The `image` and `element` declarations the model refuses outright, in script order."""
    refused: list[ast.Image | ast.Element] = []
    for binding in sorted(script.images + script.elements, key=lambda b: _order(script, b.declaration)):
        taken = model.input_image if binding.kind == "image" else model.elements
        if not taken:
            assert isinstance(binding.declaration, (ast.Image, ast.Element))
            refused.append(binding.declaration)
    return refused


_FOLLOW_ONS = frozenset({"KVS-too-many-references", "KVS-elements-unmentioned"})


def _follows_refusal(diagnostic: Diagnostic, refused: list[ast.Image | ast.Element]) -> bool:
    """A problem inside a declaration the model refuses outright (its refs, its URIs, that
    it is unmentioned), or about counting or mentioning what it refuses: removing the
    declaration, as the refusal says, removes it too."""
    if diagnostic.code == "KVS-model-unsupported" or not refused:
        return False
    if diagnostic.code in _FOLLOW_ONS:
        return True
    span = diagnostic.span
    return any(span.source is d.span.source and d.span.start <= span.start and span.end <= d.span.end for d in refused)


def _multi_shot_model() -> str | None:
    """A model that takes several shots, for a hint: the default model if it does, else the
    first such model of the matrix (None if there is none)."""
    for model_id in (DEFAULT_MODEL, *known_ids()):
        known = lookup_model(model_id)
        if known is not None and known.multi_prompt:
            return model_id
    return None


def _delete_line(statement: ast.Statement) -> Suggestion:
    """Delete the whole line of a one-line statement (its comment and line break too)."""
    span = statement.span
    text = span.source.text
    start = text.rfind("\n", 0, span.start) + 1
    end = text.find("\n", span.end)
    end = len(text) if end == -1 else end + 1
    return Suggestion(span.source.span(start, end), "", f"Remove `{span.text}`", preferred=True)


def price_known(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("model")
    span = setting.span if setting else script.shots[0].shot.span if script.shots else None
    if span is not None and model.price_per_second is None and lookup_model(script.model_id) is model:
        yield Diagnostic.of(
            "KVS-price-unknown",
            span,
            f"`{model.id}` has no published price: the cost cannot be previewed",
            "plan shows the seconds; `klingspec models sync` fetches the price Oxen publishes",
        )


def start_required(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    if model.requires_start and script.start is None and script.shots:
        yield Diagnostic.of(
            "KVS-start-required",
            script.shots[0].shot.span,
            f"`{model.id}` animates an image: the script needs a `start` frame",
            'add `start "https://..."` with the image to animate',
        )


def setting_duplicates(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for statement in script.duplicate_settings:
        first = script.settings[statement.key.value].statement
        yield Diagnostic.of(
            "KVS-setting-duplicate",
            statement.span,
            f"`{statement.key.value}` is already set",
            "keep one; the first one is used",
            related=[Related(first.span, "first set here")],
        )


def aspect_ratio(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("aspect")
    if setting and model.aspect_ratios and setting.raw not in model.aspect_ratios:
        yield Diagnostic.of(
            "KVS-aspect-ratio",
            setting.span,
            f"aspect ratio `{setting.raw}` is not one the model accepts",
            "use one of " + ", ".join(model.aspect_ratios),
        )


def aspect_with_frames(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    """A model whose page says to leave `aspect_ratio` out when the only images are the
    start/end frames (the frames give the shape): setting `aspect` then is an error."""
    setting = script.settings.get("aspect")
    if (
        setting
        and model.aspect_ratios
        and not model.aspect_with_only_frames
        and (script.start or script.end)
        and not script.images
        and not script.elements
    ):
        frames = [f for f in (script.start, script.end) if f is not None]
        yield Diagnostic.of(
            "KVS-aspect-with-frames",
            setting.statement.span,
            f"`{model.id}` takes no aspect ratio when the only images are start/end frames",
            "its page says to leave `aspect_ratio` out when using only start/end frames: the video "
            "takes the frames' shape. Remove this setting, or crop the frames to the shape you want",
            related=[Related(f.span, f"`{f.kind}` frame") for f in frames],
            suggestions=[_delete_line(setting.statement)],
        )


def resolution(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("resolution")
    if not setting or not model.resolutions or setting.raw in model.resolutions:
        return  # a model without resolutions is told in model_requirements
    by_case = [r for r in model.resolutions if r.lower() == setting.raw.lower()]
    close = by_case or close_matches(setting.raw.lower(), model.resolutions, n=1)
    written = _written(setting)
    default = f" (`{model.default_resolution}` when absent)" if model.default_resolution else ""
    yield Diagnostic.of(
        "KVS-setting-unknown-value",
        setting.span,
        f"`{model.id}` does not offer resolution `{setting.raw}`",
        (f"did you mean `{close[0]}`? The model takes " if close else "the model takes ")
        + ", ".join(f"`{r}`" for r in model.resolutions)
        + default,
        suggestions=[Suggestion.did_you_mean(written, close[0])] if close and written else [],
    )


def setting_words(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    audio = script.settings.get("audio")
    if audio and audio.raw.lower() not in ON_WORDS:
        yield Diagnostic.of(
            "KVS-setting-unknown-value",
            audio.span,
            f"audio must be `on` or `off`, not `{audio.raw}`",
            "write `audio on` to generate sound, `audio off` (the default) for silence",
        )
    fmt = script.settings.get("format")
    if fmt:
        if fmt.raw.lower() not in FORMAT_WORDS:
            close = close_matches(fmt.raw.lower(), FORMAT_WORDS, n=1)
            written = _written(fmt)
            yield Diagnostic.of(
                "KVS-setting-unknown-value",
                fmt.span,
                f"format must be `url` or `b64`, not `{fmt.raw}`",
                f"did you mean `{close[0]}`?"
                if close
                else "`url` returns a hosted link (default); `b64` returns the video inline",
                suggestions=[Suggestion.did_you_mean(written, close[0])] if close and written else [],
            )
        elif FORMAT_WORDS[fmt.raw.lower()] not in model.response_formats:
            yield Diagnostic.of(
                "KVS-setting-unknown-value",
                fmt.span,
                f"`{model.id}` does not offer format `{fmt.raw}`",
                "use one of " + ", ".join(model.response_formats),
            )


def generations(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("generations")
    if not setting:
        return
    raw = setting.raw
    ok = _whole(raw) and model.generations_min <= int(raw) <= model.generations_max
    if not ok:
        yield Diagnostic.of(
            "KVS-generations",
            setting.span,
            f"generations must be a whole number from {model.generations_min} to {model.generations_max}, not `{raw}`",
            f'the API would answer "num_generations must be an integer between '
            f'{model.generations_min} and {model.generations_max}"',
        )


def _whole(raw: str) -> bool:
    """ASCII digits only: `¹` is a digit to str.isdigit but not to int()."""
    return raw.isascii() and raw.isdigit()


def namespace(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("namespace")
    if setting and not OXEN_NAME.match(setting.raw):
        yield Diagnostic.of(
            "KVS-namespace",
            setting.span,
            f"`{setting.raw}` is not a valid namespace",
            "a user or organisation name: letters, digits, `-`, `_` and `.`",
        )


def assets_setting(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    setting = script.settings.get("assets")
    if setting is None:
        return
    found = parse_target(setting.raw, "the script")
    if isinstance(found, str):
        yield Diagnostic.of(
            "KVS-assets",
            setting.span,
            found,
            "write the Oxen repository local images are uploaded to: `assets NAMESPACE/REPO` "
            "(branch `main`) or `assets NAMESPACE/REPO@BRANCH`",
        )


# -- shots and durations -------------------------------------------------------------


def has_shots(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    if script.partial:
        return  # a shot may have been lost to a syntax error: do not pile on
    if not script.shots and not (script.library_ok and is_library(script)):
        source = script.program.main.source
        yield Diagnostic.of(
            "KVS-no-shots",
            source.span(len(source.text.rstrip())),
            "the script has no shot",
            'add one, e.g. `shot opening 5s "a red balloon rises into a blue sky"`; '
            "the API would answer \"Either 'prompt' or 'multi_prompt' must be provided\"",
        )


def is_library(script: BoundScript) -> bool:
    """A file of only `let`/`image`/`element`/`use` is a library: `check` accepts it
    alone, while `compile`, `plan` and `run` still need a shot."""
    statements = script.program.main.statements
    return bool(statements) and all(isinstance(s, (ast.Let, ast.Image, ast.Element, ast.Use)) for s in statements)


def prompts(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    limit = model.prompt_max_chars
    for shot in script.shots:
        span = shot.shot.prompt.span
        if not shot.prompt.strip():
            yield Diagnostic.of(
                "KVS-prompt-empty",
                span,
                f"the prompt of {shot.shot.label} is empty",
                'describe what happens in the shot; the API would answer "Field required"',
            )
        elif len(shot.prompt) > limit:
            over = len(shot.prompt) - limit
            yield Diagnostic.of(
                "KVS-prompt-length",
                span,
                f"the prompt of {shot.shot.label} is {len(shot.prompt)} characters; the API allows at most {limit}",
                f"cut {over} character{'s' if over != 1 else ''} (counted after templates and @name rewriting)",
            )


def whole_seconds(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for shot in script.shots:
        seconds = shot.seconds
        if seconds != seconds.to_integral_value():
            down, up = int(seconds), int(seconds) + 1
            yield Diagnostic.of(
                "KVS-duration-fraction",
                shot.shot.duration.span,
                f"durations are whole seconds, not {seconds} s",
                f"use {down}s or {up}s",
                suggestions=_roundings(shot.shot.duration),
            )


def _roundings(duration: ast.Duration) -> list[Suggestion]:
    """Round down and round up (only the author knows which), as written (`2.5s` or `2.5`),
    where the result is at least 1 s."""
    suffix = "s" if duration.span.text.endswith("s") else ""
    fixes: list[Suggestion] = []
    for rounding, word in ((ROUND_FLOOR, "down"), (ROUND_CEILING, "up")):
        whole = int(duration.seconds.to_integral_value(rounding))
        if whole >= 1:
            fixes.append(Suggestion(duration.span, f"{whole}{suffix}", f"Round {word} to {whole}{suffix or ' s'}"))
    return fixes


def shot_durations(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for shot in script.shots:
        seconds = shot.seconds
        if seconds != seconds.to_integral_value():
            continue
        if model.allowed_durations and int(seconds) not in model.allowed_durations:
            yield Diagnostic.of(
                "KVS-shot-duration",
                shot.shot.duration.span,
                f"`{model.id}` makes videos of {' or '.join(map(str, model.allowed_durations))} s, not {seconds} s",
                f"use one of {', '.join(f'{d}s' for d in model.allowed_durations)}",
            )
        elif not model.shot_min <= seconds <= model.shot_max:
            yield Diagnostic.of(
                "KVS-shot-duration",
                shot.shot.duration.span,
                f"a shot lasts {model.shot_min} to {model.shot_max} s, not {seconds} s",
                f"the API would answer \"Input should be '{model.shot_min}', "
                f"'{model.shot_min + 1}', ... or '{model.shot_max}'\"",
            )


def total_duration(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    shots = [
        s
        for s in script.shots
        if s.seconds == s.seconds.to_integral_value() and model.shot_min <= s.seconds <= model.shot_max
    ]
    if not shots or len(shots) != len(script.shots) or model.allowed_durations or script.partial:
        return
    total = sum((s.seconds for s in shots), Decimal(0))
    parts = " + ".join(f"{s.shot.label} {_s(s.seconds)}" for s in shots)
    if total > model.total_max:
        running = Decimal(0)
        crossing = shots[-1]
        for shot in shots:
            running += shot.seconds
            if running > model.total_max:
                crossing = shot
                break
        over = total - model.total_max
        yield Diagnostic.of(
            "KVS-total-duration",
            crossing.shot.duration.span,
            f"shots add up to {_s(total)}; the API allows at most {_s(model.total_max)}",
            f"{parts}; shorten the shots by {_s(over)}. The API would answer "
            f'"Total shot duration ({total}s) exceeds maximum allowed ({model.total_max}s)"',
            label=f"this shot brings the total to {_s(running)}",
        )
    elif total < model.total_min:
        short = model.total_min - total
        last = shots[-1]
        what = "the video is" if len(shots) == 1 else "shots add up to"
        yield Diagnostic.of(
            "KVS-total-duration",
            last.shot.duration.span,
            f"{what} {_s(total)}; the API needs at least {_s(model.total_min)}",
            (f"{parts}; " if len(shots) > 1 else "")
            + f"lengthen by {_s(short)}. The API would answer \"duration value '{total}' is invalid\"",
            label=f"total {_s(total)}",
        )


# -- rules Oxen's page leaves open: warnings ---------------------------------------
# Kling's own API and other hosts of the O3 models state limits on multi-shot requests
# that Oxen's page does not; the capability matrix holds them (`[multi_shot]`). They warn,
# since Oxen may accept what Kling's own API refuses.


def shots_beyond_kling(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    limit = model.max_shots_upstream
    if not model.multi_prompt or limit is None or len(script.shots) <= limit:
        return
    extra = script.shots[limit]
    yield Diagnostic.of(
        "KVS-shots-beyond-kling",
        extra.shot.span,
        f"{len(script.shots)} shots in one request; Kling's own API takes at most {limit}",
        f"Kling's own API and other hosts of the O3 models take 1 to {limit} shots; Oxen's page "
        f"does not say, so Oxen may accept them or fail the render. Merge shots to keep {limit}, "
        "or split the video into two scripts",
        label=f"shot number {limit + 1}",
    )


def frames_with_multishot(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    given = [frame for frame in (script.start, script.end) if frame is not None]
    if not model.multi_prompt or model.frames_with_shots_upstream or len(script.shots) < 2 or not given:
        return
    kinds = " and ".join(f"`{frame.kind}`" for frame in given)
    yield Diagnostic.of(
        "KVS-frames-with-multishot",
        given[0].span,
        f"{kinds} frame{'s' if len(given) > 1 else ''} with {len(script.shots)} shots; "
        "Kling's own API takes no start or end frame in a multi-shot request",
        "the rule is from Kling's own API; Oxen's page does not say, so Oxen may use the frames, "
        "ignore them or fail the render. Keep the frames with a single shot, or drop them",
        related=[Related(frame.span, f"`{frame.kind}` frame also given") for frame in given[1:]],
    )


# -- bindings, frames and URIs ---------------------------------------------------


def reference_count(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    limit = model.max_images_plus_elements
    if not script.shots:
        return  # a library: only what a script mentions is sent, and counted there
    bindings = sorted(script.images + script.elements, key=lambda b: _order(script, b.declaration))
    if limit and len(bindings) > limit:
        extra = bindings[limit]
        yield Diagnostic.of(
            "KVS-too-many-references",
            extra.declaration.name.span,
            f"{_plural(len(script.images), 'image')} + {_plural(len(script.elements), 'element')} "
            f"= {len(bindings)}; the API allows at most {limit} together",
            f"remove {len(bindings) - limit} binding{'s' if len(bindings) - limit != 1 else ''}, "
            "or fold extra angles into an element's `refs`",
            label=f"binding number {limit + 1}",
        )


def _order(script: BoundScript, statement: ast.Statement) -> int:
    for index, candidate in enumerate(script.program.statements):
        if candidate is statement:
            return index
    return 0


def element_fields(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for binding in script.elements:
        element = binding.declaration
        assert isinstance(element, ast.Element)  # `elements` holds only element bindings
        fronts, refs = element.all("front"), element.all("refs")
        if not fronts:
            yield Diagnostic.of(
                "KVS-element-front",
                element.name.span,
                f"element `{element.name.value}` has no `front` image",
                'add `front "https://..."`: a frontal view of the character or object is required',
            )
        for extra in fronts[1:] + refs[1:]:
            yield Diagnostic.of(
                "KVS-element-duplicate-field",
                extra.span,
                f"`{extra.kind}` is given twice in element `{element.name.value}`",
                "give one `front` URI and one `refs` line with up to "
                f"{model.max_refs_per_element} URIs separated by commas",
            )
        for front in fronts:
            if len(front.uris) > 1:
                yield Diagnostic.of(
                    "KVS-element-duplicate-field",
                    front.uris[1].span,
                    "`front` takes one URI",
                    "move the other angles to `refs`",
                )
        count = sum(len(r.uris) for r in refs)
        if refs and count > model.max_refs_per_element:
            first_extra = [u for r in refs for u in r.uris][model.max_refs_per_element]
            yield Diagnostic.of(
                "KVS-too-many-refs",
                first_extra.span,
                f"element `{element.name.value}` has {count} reference images; "
                f"the API allows at most {model.max_refs_per_element}",
                "keep the angles that differ most from the front view",
            )


def frames(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Frame] = {}
    for frame in script.frames:
        if frame.kind in seen:
            yield Diagnostic.of(
                "KVS-frame-duplicate",
                frame.span,
                f"`{frame.kind}` frame is given twice",
                "a video has one first and one last frame",
                related=[Related(seen[frame.kind].span, "first given here")],
            )
        else:
            seen[frame.kind] = frame
    if script.end and not script.start:
        yield Diagnostic.of(
            "KVS-end-without-start",
            script.end.span,
            "an `end` frame needs a `start` frame",
            'add `start "https://..."`; the API fills in between the two frames',
            suggestions=[_start_above(script.end)],
        )


def _start_above(end: ast.Frame) -> Suggestion:
    """A `start` line above the `end`, indented alike, with a placeholder URI (which the
    URI rule flags until it is filled in)."""
    source = end.span.source
    text = source.text
    line_start = text.rfind("\n", 0, end.span.start) + 1
    line = text[line_start:]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    newline = "\r\n" if "\r\n" in text else "\n"
    return Suggestion(
        source.span(line_start),
        f'{indent}start "https://"{newline}',
        "Add a `start` frame above the `end`",
        preferred=True,
    )


def uris(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for text in _all_uris(script):
        uri = script.expansion[text]
        if is_local_path(uri):
            continue  # a local file: read and reported by images.py
        problem = _uri_problem(uri)
        if problem:
            code, message, hint = problem
            fixes = []
            path = _file_url_path(uri)
            if path is not None:
                message, hint = f"`{uri[:60]}` is a `file:` URL", f"write the plain path instead: `{path}`"
                if text.content_span.text == uri:  # written out, not made by a template
                    fixes = [Suggestion(text.content_span, path, f"Replace with the path `{path}`", preferred=True)]
            yield Diagnostic.of(code, text.span, message, hint, suggestions=fixes)


def _file_url_path(uri: str) -> str | None:
    """The local path a `file:` URL means (`file:///home/me/x.png` -> `/home/me/x.png`),
    or None for other URIs and for a file on another host."""
    if not uri.lower().startswith("file:"):
        return None
    from urllib.parse import unquote

    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        return None
    path = unquote(parts.path)
    return path if path and is_local_path(path) else None


def fetchable_urls(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    yield from media_urls.url_warnings((text, script.uri(text)) for text in _all_uris(script))


def _all_uris(script: BoundScript) -> Iterator[ast.Text]:
    return script.uri_texts()


def _uri_problem(uri: str) -> tuple[str, str, str] | None:
    if any(c.isspace() for c in uri):
        return ("KVS-uri-invalid", "a URI cannot contain spaces", "encode spaces as %20")
    if any(not c.isprintable() for c in uri):
        return (
            "KVS-uri-invalid",
            "a URI cannot contain control characters",
            "check the template or escape that produced this URI",
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as error:  # e.g. an unbalanced "[" in the host
        return ("KVS-uri-invalid", f"`{uri[:60]}` is not a valid URL: {error}", "check the host part")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not scheme:
            return (
                "KVS-uri-scheme",
                f"`{uri[:60]}` is not an absolute URL",
                "give a public https:// URL, or the path of a local image (uploaded to the `assets` repository)",
            )
        return (
            "KVS-uri-scheme",
            f"`{scheme}:` URIs are not accepted",
            "give a public https:// URL the API can download",
        )
    if not host:
        return ("KVS-uri-invalid", f"`{uri[:60]}` has no host", "write it as https://host/path")
    return None


def unused_bindings(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    if not script.shots or script.partial:
        return  # a library (its bindings are for other scripts), or mentions may be lost
    used = {id(m.binding) for shot in script.shots for m in shot.mentions if m.binding}
    misspelt = _suggested(script)
    for binding in script.images + script.elements:
        if id(binding) not in used and binding.name not in misspelt:
            yield Diagnostic.of(
                "KVS-binding-unused",
                binding.declaration.name.span,
                f"{binding.kind} `{binding.name}` ({binding.ref}) is never mentioned in a prompt",
                f"mention it as `@{binding.name}`, or remove it (it still counts toward the "
                f"limit of {model.max_images_plus_elements})",
            )


def _suggested(script: BoundScript) -> set[str]:
    """Names that an unbound `@mention` is probably a typo of (already reported there)."""
    names = [b.name for b in script.images + script.elements]
    return {
        close
        for shot in script.shots
        for m in shot.mentions
        if m.binding is None
        for close in close_matches(m.written.lstrip("@"), names, n=1)
    }


def duplicate_uris(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Text] = {}
    for text in _all_uris(script):
        key, what = _identity(script, text)
        if key in seen:
            yield Diagnostic.of(
                "KVS-uri-duplicate",
                text.span,
                f"this {what} is bound twice",
                "bind it once and mention the same name twice",
                related=[Related(seen[key].span, "also bound here")],
            )
        else:
            seen[key] = text


def _identity(script: BoundScript, text: ast.Text) -> tuple[str, str]:
    """What makes two URIs the same image: the URL, or a local file's content (two paths
    to one file, or two copies of it, are one image)."""
    file = script.local_files.get(id(text))
    if file is not None:
        return f"sha256:{file.sha256}", "image"
    uri = script.expansion[text]
    if is_local_path(uri):
        import os

        return "path:" + os.path.abspath(os.path.join(os.path.dirname(text.span.source.name), uri)), "image"
    return uri, "URI"


def elements_mentioned(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    if not script.elements:
        return
    for shot in script.shots:
        if any(m.binding is None for m in shot.mentions):
            continue  # an unbound mention is already reported; it may be the element
        if not any(m.binding and m.binding.kind == "element" for m in shot.mentions):
            names = ", ".join(f"@{b.name}" for b in script.elements)
            yield Diagnostic.of(
                "KVS-elements-unmentioned",
                shot.shot.prompt.span,
                f"the prompt of {shot.shot.label} mentions none of the bound elements",
                f"mention {names} where it appears, so the model keeps it consistent",
            )


# -- local images: the model's formats, and the limits other hosts publish ---------------
# The files were read and identified in images.py; these rules only compare what they hold
# with the capability matrix ([images]).


def _local_files(script: BoundScript) -> Iterator[tuple[ast.Text, ImageFile]]:
    for text in _all_uris(script):
        file = script.local_files.get(id(text))
        if file is not None:
            yield text, file


_FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "gif": "GIF"}


def image_formats(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    for text, file in _local_files(script):
        if file.format in model.image_formats:
            continue
        taken = ", ".join(_FORMAT_NAMES.get(f, f.upper()) for f in model.image_formats)
        kind = _FORMAT_NAMES.get(file.format, file.format.upper())
        if file.format in model.image_formats_unlisted:
            yield Diagnostic.of(
                "KVS-image-format-unlisted",
                text.span,
                f"{file.name} is a {kind} image, which `{model.id}`'s page does not list",
                f"Oxen lists {kind} for another Kling model only, and Kling's own API takes "
                f"none; the render may fail. Convert it to one of {taken}",
            )
        else:
            yield Diagnostic.of(
                "KVS-image-format",
                text.span,
                f"{file.name} is a {kind} image; `{model.id}` takes {taken}",
                f"convert it to one of {taken}",
            )


def image_size_upstream(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    limit = model.image_max_bytes_upstream
    for text, file in _local_files(script):
        if limit is not None and file.size > limit:
            yield Diagnostic.of(
                "KVS-image-large",
                text.span,
                f"{file.name} is {_megabytes(file.size)}; {model.image_limits_source} take at most {_megabytes(limit)}",
                "Oxen's page states no limit, so Oxen may accept it or fail the render; "
                "export it smaller (JPEG or WebP, or fewer pixels)",
            )


def image_side_upstream(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    limit = model.image_min_side_upstream
    for text, file in _local_files(script):
        if limit is not None and min(file.width, file.height) < limit:
            yield Diagnostic.of(
                "KVS-image-small",
                text.span,
                f"{file.name} is {file.width}x{file.height} px; {model.image_limits_source} need "
                f"at least {limit} px on each side",
                "Oxen's page states no minimum, so Oxen may accept it or fail the render; "
                f"use an image at least {limit}x{limit} px",
            )


def image_aspect_upstream(script: BoundScript, model: Model) -> Iterator[Diagnostic]:
    bounds = model.image_aspect_range_upstream
    if bounds is None:
        return
    low, high = bounds
    for text, file in _local_files(script):
        ratio = Decimal(file.width) / Decimal(max(file.height, 1))
        if not low <= ratio <= high:
            yield Diagnostic.of(
                "KVS-image-aspect",
                text.span,
                f"{file.name} is {file.width}x{file.height} px ({_aspect(ratio)}); "
                f"{model.image_limits_source} take {_aspect(low)} to {_aspect(high)}",
                "Oxen's page states no range, so Oxen may accept it or fail the render; crop it",
            )


def _megabytes(size: int) -> str:
    return f"{Decimal(size) / 1_000_000:.1f} MB"


def _aspect(ratio: Decimal) -> str:
    """0.4 -> `1:2.5`, 6 -> `6:1`."""
    if ratio >= 1:
        return f"{ratio.normalize():f}:1" if ratio == ratio.quantize(Decimal("0.1")) else f"{ratio:.1f}:1"
    inverse = 1 / ratio
    return f"1:{inverse.normalize():f}" if inverse == inverse.quantize(Decimal("0.1")) else f"1:{inverse:.1f}"


RULES: tuple[Rule, ...] = (
    model_known,
    model_retired,
    model_requirements,
    price_known,
    start_required,
    setting_duplicates,
    aspect_ratio,
    aspect_with_frames,
    resolution,
    setting_words,
    generations,
    namespace,
    assets_setting,
    has_shots,
    prompts,
    whole_seconds,
    shot_durations,
    total_duration,
    shots_beyond_kling,
    reference_count,
    element_fields,
    frames,
    frames_with_multishot,
    uris,
    fetchable_urls,
    unused_bindings,
    duplicate_uris,
    elements_mentioned,
    image_formats,
    image_size_upstream,
    image_side_upstream,
    image_aspect_upstream,
)


def check(script: BoundScript) -> list[Diagnostic]:
    """Run every rule against the script's model (the default model's facts when the
    model is unknown, so the rest is still checked). What follows from the model refusing
    images or elements outright is dropped: the refusal is the one thing to fix."""
    model = script.model or lookup_model(default_model_id())
    assert model is not None  # the default model ships with klingspec
    found: list[Diagnostic] = []
    for rule in RULES:
        found.extend(rule(script, model))
    refused = _refused_bindings(script, model)
    return [d for d in found if not _follows_refusal(d, refused)]
