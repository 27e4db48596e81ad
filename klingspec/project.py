"""Project settings: the nearest `klingspec.toml`, or the `[tool.klingspec]` table of the
nearest `pyproject.toml`, walking up from the script's folder (as ruff finds its
settings; at one level `klingspec.toml` wins, and a `pyproject.toml` without the table is
passed over).

Keys: `model` (the default model of scripts that name none), `budget` (USD, for `run`
and `watch --run`), `out` (the render folder, relative to the file), `api_url`, and the
tables `[assets]` (`repo`, `branch`) and `[severity]` (`CODE = "ignore" | "warning" |
"error"`). A warning may be ignored or raised to an error; an error cannot be lowered (the
API would refuse the request anyway). A mistake in the file is `KVS-config` at its own
line and column, like a mistake in a script. Every file looked at goes through the
pipeline's reader, so the check cache sees one appear or change.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from klingspec.assets import HUB_URL, AssetsTarget, parse_target
from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic, Suggestion, close_matches
from klingspec.loading import Reader, decode, read_bytes
from klingspec.source import Source, Span

OXEN_HOST = HUB_URL.removeprefix("https://")  # the only remote host a project file may name as its API
CONFIG_NAME = "klingspec.toml"
PYPROJECT = "pyproject.toml"
SEVERITIES = ("ignore", "warning", "error")
KEYS = ("model", "budget", "out", "api_url", "assets", "severity")
_HELP = (
    'klingspec reads: model = "ID", budget = USD, out = "FOLDER", api_url = "URL", '
    '[assets] repo = "NAMESPACE/REPO", and [severity] CODE = "ignore" | "warning" | "error"'
)


@dataclass(frozen=True)
class Setting:
    """One value the file gives, and where (`file:line`, for `klingspec config`)."""

    value: Any
    where: str


@dataclass(frozen=True)
class Project:
    """What the project file says; empty when there is none."""

    path: str | None = None  # as shown (relative to the current folder when below it)
    settings: Mapping[str, Setting] = field(default_factory=dict)  # model, budget, out, api_url
    assets: AssetsTarget | None = None
    severity: Mapping[str, str] = field(default_factory=dict)  # code -> ignore | warning | error
    problems: tuple[Diagnostic, ...] = ()

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        """The file's mistakes, for the printers that take a checked file's diagnostics."""
        return self.problems

    def value(self, key: str) -> Any:
        setting = self.settings.get(key)
        return None if setting is None else setting.value


def load(script_path: str, reader: Reader = read_bytes) -> Project:
    """The project settings that apply to `script_path`."""
    folder = os.path.dirname(os.path.abspath(script_path))
    while True:
        for name in (CONFIG_NAME, PYPROJECT):
            candidate = os.path.join(folder, name)
            try:
                data = reader(candidate)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            except OSError as error:
                shown = _shown(candidate)
                return Project(shown, problems=(_problem(shown, None, f"cannot read {shown}: {error.strerror}"),))
            if name == PYPROJECT and b"tool.klingspec" not in data:
                continue  # a pyproject.toml without [tool.klingspec] is not klingspec's
            found = _read(_shown(candidate), data, os.path.dirname(candidate), pyproject=name == PYPROJECT)
            if found is not None:
                return found
        parent = os.path.dirname(folder)
        if parent == folder:
            return Project()
        folder = parent


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir + os.sep + os.pardir) else relative


def _problem(name: str, span: Span | None, message: str, help: str | None = None, **more: Any) -> Diagnostic:
    return Diagnostic.of("KVS-config", span or Source(name, "").span(0), message, help, **more)


def _read(name: str, data: bytes, folder: str, *, pyproject: bool) -> Project | None:
    """The file's settings (None: a pyproject.toml whose `tool` has no `klingspec`)."""
    import tomllib

    source, problems = decode(name, data)
    if problems:
        return Project(name, problems=tuple(problems))
    try:
        document = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"at line (\d+), column (\d+)", str(error))
        offset = source.offset(int(match.group(1)), int(match.group(2))) if match else 0
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        span = source.span(offset, min(offset + 1, len(source.text)))
        return Project(name, problems=(_problem(name, span, f"{name} is not valid TOML: {message}", _HELP),))
    table: Any = document
    if pyproject:
        table = document.get("tool", {}).get("klingspec") if isinstance(document.get("tool"), dict) else None
        if table is None:
            return None
        if not isinstance(table, dict):
            problem = _problem(name, _key(source, "klingspec"), "[tool.klingspec] must be a table")
            return Project(name, problems=(problem,))
    header = re.search(r"(?m)^[ \t]*\[tool\.klingspec[\].]", source.text) if pyproject else None
    return _settings(name, source, table, folder, header.start() if header else 0)


def _settings(name: str, source: Source, table: dict[str, Any], folder: str, base: int = 0) -> Project:
    problems: list[Diagnostic] = []
    settings: dict[str, Setting] = {}

    def key_of(key: str) -> Span:
        return _key(source, key, base)

    def where(key: str) -> str:
        return f"{name}:{key_of(key).start_position[0]}"

    for key in sorted(set(table) - set(KEYS)):
        close = close_matches(key, KEYS, n=1)
        span = key_of(key)
        problems.append(
            _problem(
                name,
                span,
                f"unknown key `{key}` in {name}",
                f"did you mean `{close[0]}`?" if close else _HELP,
                suggestions=[Suggestion.did_you_mean(_name_span(source, span, key), close[0])] if close else [],
            )
        )
    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "model": (lambda v: isinstance(v, str) and bool(v), 'a model id in quotes, e.g. model = "kling-video-o3-omni"'),
        "budget": (_is_amount, "an amount in USD, e.g. budget = 5 (0 or more)"),
        "out": (lambda v: isinstance(v, str) and bool(v), 'a folder in quotes, e.g. out = "renders"'),
        "api_url": (
            _safe_api_url,
            "Oxen's own API over https (https://hub.oxen.ai/...) or a server on this machine "
            "(http://127.0.0.1:PORT/...): a file found above a script must not send your key "
            "anywhere else (use --api-url or KLINGSPEC_API_URL for another API)",
        ),
    }
    for key, (valid, expected) in checks.items():
        if key not in table:
            continue
        value = table[key]
        if not valid(value):
            problems.append(_problem(name, key_of(key), f"`{key}` in {name} must be {expected}"))
            continue
        if key == "model":
            from klingspec import targets

            if targets.model(value) is None:
                problems.append(
                    _problem(
                        name,
                        key_of(key),
                        f"`model` in {name} names no model klingspec knows: `{value}`",
                        "`klingspec models` lists them",
                    )
                )
                continue
        if key == "out":
            value = os.path.normpath(os.path.join(folder, value))
        settings[key] = Setting(value.rstrip("/") if key == "api_url" else value, where(key))
    assets, found = _assets(name, source, table.get("assets"), base)
    problems += found
    severity, found = _severity(name, source, table.get("severity"), base)
    problems += found
    return Project(name, settings, assets, severity, tuple(problems))


def _safe_api_url(value: Any) -> bool:
    """Where a project file may point `run`: the key goes with every request, and the file
    may come with a cloned repository, so only Oxen's host over https, or loopback."""
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        return False
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:
        return False
    host = (url.hostname or "").lower()
    if url.scheme == "https" and host == OXEN_HOST:
        return True
    return url.scheme in ("http", "https") and host in ("127.0.0.1", "localhost", "::1")


def _is_amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _assets(name: str, source: Source, table: Any, base: int = 0) -> tuple[AssetsTarget | None, list[Diagnostic]]:
    if table is None:
        return None, []
    if not isinstance(table, dict):
        return None, [_problem(name, _key(source, "assets", base), f"`assets` in {name} must be a table: [assets]")]
    unknown = sorted(set(table) - {"repo", "branch"})
    if unknown:
        return None, [
            _problem(
                name,
                _key(source, unknown[0], base),
                f"unknown key `{unknown[0]}` in [assets] of {name}",
                'give `repo = "NAMESPACE/REPO"` and, optionally, `branch = "main"`',
            )
        ]
    repo, branch = table.get("repo"), table.get("branch")
    if not isinstance(repo, str) or (branch is not None and not isinstance(branch, str)):
        return None, [
            _problem(
                name,
                _key(source, "repo" if not isinstance(repo, str) else "branch", base),
                f"[assets] of {name} needs `repo` as a string, and `branch` (optional) as a string",
                'for example: repo = "aurora-studio/refs"',
            )
        ]
    found = parse_target(repo, name, branch)
    if isinstance(found, str):
        return None, [Diagnostic.of("KVS-assets", _key(source, "repo", base), found)]
    return found, []


def _severity(name: str, source: Source, table: Any, base: int = 0) -> tuple[dict[str, str], list[Diagnostic]]:
    if table is None:
        return {}, []
    if not isinstance(table, dict):
        return {}, [_problem(name, _key(source, "severity", base), f"`severity` in {name} must be a table: [severity]")]
    chosen: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for code, level in table.items():
        span = _key(source, code, base)
        known = CODES.get(code)
        if known is None:
            close = close_matches(code, CODES, n=1)
            problems.append(
                _problem(
                    name,
                    span,
                    f"`{code}` in [severity] of {name} is not a klingspec code",
                    f"did you mean `{close[0]}`?" if close else "`klingspec check` prints each problem's code",
                )
            )
        elif level not in SEVERITIES:
            problems.append(
                _problem(name, span, f"`{code}` in [severity] of {name} must be one of: ignore, warning, error")
            )
        elif known.severity == "error" and level != "error":
            problems.append(
                _problem(
                    name,
                    span,
                    f"`{code}` is an error and cannot be lowered to {level}: the API would refuse the request",
                    "remove this line; fix the scripts instead",
                )
            )
        else:
            chosen[code] = level
    return chosen, problems


def _key(source: Source, key: str, base: int = 0) -> Span:
    """The line that sets `key` (or opens its table) at or after `base` (where
    `[tool.klingspec]` starts in a pyproject.toml), for a diagnostic or `config`."""
    pattern = re.compile(
        r'(?m)^[ \t]*"?' + re.escape(key) + r'"?[ \t]*=[^\n]*|^[ \t]*\[(?:tool\.klingspec\.)?' + re.escape(key) + r"\]"
    )
    found = pattern.search(source.text, base)
    return source.span(found.start(), found.end()) if found else source.span(0)


def _name_span(source: Source, line: Span, key: str) -> Span:
    start = source.text.find(key, line.start, line.end)
    return source.span(start, start + len(key)) if start >= 0 else line


def severity_of(diagnostic: Diagnostic, project: Project) -> str | None:
    """What the project makes of `diagnostic`: "ignore", "error", or None (as catalogued)."""
    level = project.severity.get(diagnostic.code)
    return None if level in (None, "warning") else level
