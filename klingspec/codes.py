"""The catalogue of stable diagnostic codes: nothing else may invent one.

Each code has a severity, a one-line title and a page in `docs/codes/<code>.md`. Codes
are part of the command-line contract (scripts grep for them), so they are never renamed;
a retired code stays listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Code:
    """One catalogue entry: the code, its severity and a one-line title."""

    code: str
    severity: Severity
    title: str

    @property
    def doc(self) -> str:
        return f"docs/codes/{self.code}.md"


def _catalogue(*rows: tuple[str, Severity, str]) -> dict[str, Code]:
    return {code: Code(code, severity, title) for code, severity, title in rows}


CODES: dict[str, Code] = _catalogue(
    # loading
    ("KVS-file-not-found", "error", "a script or used file does not exist"),
    ("KVS-file-unreadable", "error", "a file could not be read"),
    ("KVS-encoding", "error", "a file is not valid UTF-8 text"),
    ("KVS-file-too-large", "error", "a file is larger than klingspec will read"),
    ("KVS-use-cycle", "error", "files use each other in a cycle"),
    ("KVS-use-ignored", "warning", "a used file's settings, frames or shots are ignored"),
    ("KVS-vars-file", "error", "a --vars file could not be read or parsed"),
    ("KVS-var-syntax", "error", "a --var option is not NAME=VALUE"),
    # films
    ("KVS-film-mixed", "error", "a film holds scenes only, not settings, bindings or shots of its own"),
    ("KVS-scene-name", "error", "a scene name is used twice, or `continues` names no earlier scene"),
    ("KVS-scene-film", "error", "a scene's file is itself a film"),
    ("KVS-scene-start", "error", "a continued scene declares its own start frame"),
    ("KVS-scene-frames", "error", "a continued scene's model takes no start frame"),
    ("KVS-scene-take", "error", "`continues ... take N` names a take the scene does not render"),
    ("KVS-film-length", "error", "the film runs longer than --max-seconds"),
    ("KVS-vars-table", "error", "a --vars-table file could not be read, or a row or column is malformed"),
    # syntax
    ("KVS-syntax-unexpected", "error", "the parser met a token it did not expect here"),
    ("KVS-syntax-eof", "error", "the script ends in the middle of a statement"),
    ("KVS-syntax-character", "error", "a character that cannot start any token"),
    ("KVS-syntax-string", "error", "a string is not terminated"),
    ("KVS-syntax-escape", "error", "an unknown escape sequence in a string"),
    ("KVS-syntax-too-many", "error", "too many syntax errors; the rest are not reported"),
    ("KVS-syntax-nesting", "error", "lists nested too deeply"),
    # settings
    ("KVS-setting-unknown-value", "error", "a setting has a value it does not accept"),
    ("KVS-setting-duplicate", "error", "a setting is given twice"),
    ("KVS-model-unknown", "error", "the model id is not in klingspec's capability matrix"),
    ("KVS-model-unsupported", "error", "the chosen model does not support a feature the script uses"),
    ("KVS-model-retired", "warning", "the model is retired from the catalogue; a successor may be named"),
    ("KVS-aspect-ratio", "error", "the aspect ratio is not one the model accepts"),
    (
        "KVS-aspect-with-frames",
        "error",
        "an aspect ratio with only start/end frames, which the model says to leave out",
    ),
    ("KVS-generations", "error", "generations is outside 1..4"),
    ("KVS-namespace", "error", "the namespace is not a valid Oxen namespace name"),
    ("KVS-assets", "error", "the assets target is not NAMESPACE/REPO[@BRANCH]"),
    ("KVS-config", "error", "klingspec.toml could not be read or has a bad value"),
    ("KVS-allow", "warning", "an inline allowance names an error, an unknown code, or nothing that is there"),
    # templates
    ("KVS-template-syntax", "error", "a Jinja template inside a string does not parse"),
    ("KVS-template-undefined", "error", "a template uses a name that is not defined"),
    ("KVS-template-error", "error", "a template failed while it was expanded"),
    ("KVS-template-limit", "error", "a template expands past klingspec's size or time bound"),
    ("KVS-template-unsafe", "error", "a template tried something the sandbox forbids"),
    ("KVS-let-duplicate", "warning", "a variable is defined twice; the later definition wins"),
    ("KVS-var-unused", "warning", "a --var or --vars name is not used by the script"),
    ("KVS-var-type", "error", "a --var or --vars value is not of the type of the `let` it replaces"),
    # binding
    ("KVS-name-duplicate", "error", "a binding name is declared twice"),
    ("KVS-name-reserved", "error", "a binding name looks like a raw @ImageN/@ElementN reference"),
    ("KVS-name-unbound", "error", "an @name in a prompt is not bound"),
    ("KVS-ref-range", "error", "a raw @ImageN/@ElementN is out of range"),
    ("KVS-binding-unused", "warning", "a bound image or element is never referenced"),
    ("KVS-uri-duplicate", "warning", "the same URI is bound twice"),
    ("KVS-elements-unmentioned", "warning", "a prompt mentions none of the bound elements"),
    ("KVS-negative-reference", "warning", "an @name in the negative prompt, which is sent as written"),
    # API rules
    ("KVS-no-shots", "error", "the script has no shot"),
    ("KVS-prompt-empty", "error", "a prompt is empty after expansion"),
    ("KVS-prompt-length", "error", "a prompt is longer than the model allows"),
    ("KVS-shot-duration", "error", "a shot's duration is outside what the model allows"),
    ("KVS-duration-fraction", "error", "a duration is not a whole number of seconds"),
    ("KVS-total-duration", "error", "the shots add up to less or more than the model allows"),
    ("KVS-shots-beyond-kling", "warning", "more shots than Kling's own API takes in one request"),
    ("KVS-too-many-references", "error", "images plus elements exceed the model's limit"),
    ("KVS-too-many-refs", "error", "an element has more reference images than allowed"),
    ("KVS-element-front", "error", "an element has no front image"),
    ("KVS-element-duplicate-field", "error", "an element gives front or refs twice"),
    ("KVS-end-without-start", "error", "an end frame needs a start frame"),
    ("KVS-start-required", "error", "the model animates an image and needs a start frame"),
    ("KVS-frame-duplicate", "error", "a start or end frame is given twice"),
    ("KVS-frames-with-multishot", "warning", "start or end frame with several shots, which Kling's own API refuses"),
    ("KVS-uri-scheme", "error", "a URI is not an absolute http(s) URL"),
    ("KVS-uri-invalid", "error", "a URI is malformed"),
    ("KVS-url-http", "warning", "a URL is plain http://, which the API may refuse"),
    ("KVS-url-private", "warning", "a URL's host cannot be reached from the internet"),
    ("KVS-url-page", "warning", "a URL is a web page about a file, not the file"),
    # check --online: what the URL's server answers now
    ("KVS-url-status", "warning", "fetching a URL gave an HTTP error status"),
    ("KVS-url-not-image", "warning", "a URL answers with something that is not an image"),
    ("KVS-url-login", "warning", "a URL redirects to a sign-in page"),
    ("KVS-url-unreachable", "warning", "a URL could not be fetched: a network error or a timeout"),
    # local images
    ("KVS-image-not-found", "error", "a local image does not exist"),
    ("KVS-image-unreadable", "error", "a local image could not be read"),
    ("KVS-image-invalid", "error", "a local image is empty, not an image, or damaged"),
    ("KVS-image-too-large", "error", "a local image is larger than klingspec reads"),
    ("KVS-image-format", "error", "a local image is in a format the model does not take"),
    ("KVS-image-format-unlisted", "warning", "a local image's format is listed for another model only"),
    ("KVS-image-large", "warning", "a local image is over the file size other hosts of the model take"),
    ("KVS-image-small", "warning", "a local image is under the side other hosts of the model need"),
    ("KVS-image-aspect", "warning", "a local image's aspect ratio is outside what other hosts take"),
    ("KVS-assets-missing", "error", "a local image has no Oxen repository to be uploaded to"),
    # compile
    ("KVS-schema", "error", "the request body does not match the API schema"),
    ("KVS-schema-model", "error", "the request body does not match the model's published request schema"),
    ("KVS-internal", "error", "klingspec itself failed; please report it"),
    # pricing
    ("KVS-price-unknown", "warning", "the model has no known price; the cost cannot be previewed"),
)


def lookup(code: str) -> Code:
    """The catalogue entry of `code`; a KeyError here is a klingspec bug."""
    return CODES[code]
