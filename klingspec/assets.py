"""Local images and where they are uploaded: the URL-or-path split, the `assets` target
(an Oxen repository and branch) and the content-addressed URL each image gets.

Light on purpose: `check` imports this module for every script, so it holds no image
code. Reading and decoding local images (Pillow) is `images.py`, loaded only when a
script names a local path.

A local image is uploaded to `{namespace}/{repo}` on `branch` at `klingspec/{sha256}.{ext}`
and sent as that file's hub URL, so the URL is known offline, holds no local path, and is
the same on every machine: the body is byte-identical wherever it is compiled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUB_URL = "https://hub.oxen.ai"  # the Oxen hub: the API lives under /api, repository files under /api/repos
DEFAULT_BRANCH = "main"
REMOTE_FOLDER = "klingspec"
OXEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # a namespace or a repository
# A branch: no `/` (the URL `file/{branch}/{path}` would be ambiguous) and no `..`.
_BRANCH = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")  # C:\refs\hero.png is a path, not a `c:` URI


def is_local_path(uri: str) -> bool:
    """Whether a URI (as expanded) names a local file rather than a URL: it has no
    scheme (`refs/hero.png`, `./hero.png`, `../x.webp`, `/abs/x.jpg`, `C:\\x.png`).

    Not a path, so left to the URL rules: anything with a scheme (`https:`, `file:`,
    `data:`), the empty string, a scheme-relative `//host/x.png`, and text with leading or
    trailing whitespace. This is the one place the split is made.
    """
    if not uri or uri.startswith("//") or uri != uri.strip():
        return False
    return _SCHEME.match(uri) is None or _DRIVE.match(uri) is not None


@dataclass(frozen=True)
class AssetsTarget:
    """Where local images are uploaded: an Oxen repository and branch, and which setting
    chose it (`--assets`, `the script`, or the path of a `klingspec.toml`)."""

    namespace: str
    repo: str
    branch: str
    origin: str

    @property
    def name(self) -> str:
        """`namespace/repo@branch`, as the setting is written."""
        return f"{self.namespace}/{self.repo}@{self.branch}"

    def url(self, remote_path: str) -> str:
        """The public hub URL of a file of this repository on this branch."""
        return f"{HUB_URL}/api/repos/{self.namespace}/{self.repo}/file/{self.branch}/{remote_path}"


def remote_path(sha256: str, extension: str) -> str:
    """Where an image is stored in the repository: by its content, never by its name."""
    return f"{REMOTE_FOLDER}/{sha256}.{extension}"


def parse_target(text: str, origin: str, branch: str | None = None) -> AssetsTarget | str:
    """`NAMESPACE/REPO` or `NAMESPACE/REPO@BRANCH` (the branch defaults to `main`, or to
    `branch` when given apart, as `klingspec.toml` does). Returns the target, or a sentence
    saying what is wrong with `text`."""
    repo_part, at, written_branch = text.partition("@")
    if at and branch is not None:
        return "give the branch once: in `repo` (`@BRANCH`) or in `branch`, not both"
    namespace, slash, repo = repo_part.partition("/")
    if not slash:
        return f"`{text}` is not NAMESPACE/REPO (an Oxen repository such as `aurora-studio/refs`)"
    if not OXEN_NAME.match(namespace):
        return f"`{namespace}` is not a valid namespace (letters, digits, `-`, `_` and `.`)"
    if not OXEN_NAME.match(repo):
        return f"`{repo}` is not a valid repository name (letters, digits, `-`, `_` and `.`)"
    chosen = written_branch if at else (branch if branch is not None else DEFAULT_BRANCH)
    if not _BRANCH.match(chosen):
        return f"`{chosen}` is not a branch klingspec uploads to (letters, digits, `-`, `_` and `.`; no `/`)"
    return AssetsTarget(namespace, repo, chosen, origin)
