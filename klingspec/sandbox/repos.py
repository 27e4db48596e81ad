"""Repositories: the files uploaded with `PUT /api/repos/…/file/…`, and what `hub.oxen.ai` URLs mean here.

Oxen's documented way to give the API a local image is to upload it to an Oxen repository
and pass its `https://hub.oxen.ai/api/repos/{namespace}/{repo}/file/{branch}/{path}` URL
(fact sheet 7, [HTTP]). The sandbox is that hub too: its uploads land in a `RepoStore`,
and a hub URL in a request body is looked up there (`hub_location`), never on the network.

Choices where the documents are silent (OWN):
- A repository exists once something is uploaded to it; `POST /api/repos` (creating one)
  is not emulated, so an upload never fails for a missing repository or branch.
- The branch is one path segment (`main`, `dev`); a branch name containing `/` cannot be
  told apart from the file's path without knowing the repository's branches.
- A commit id is 32 lowercase hex digits, like the ids in Oxen's API reference; the first
  commit on a branch has no parents, each later one has the previous one as its parent.
"""

from __future__ import annotations

import mimetypes
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

HUB_HOST = "hub.oxen.ai"
_HUB_PREFIX = "/api/repos/"

# Content types by extension, before the platform's table (which may lack webp or mov).
_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
}
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class Location:
    """Where a file lives: `namespace/repo` on `branch`, at `path` (no leading `/`)."""

    namespace: str
    repo: str
    branch: str
    path: str

    @property
    def repository(self) -> str:
        """`namespace/repo`, the spelling `SandboxConfig.private_repos` uses."""
        return f"{self.namespace}/{self.repo}"


@dataclass(frozen=True)
class Commit:
    id: str
    message: str
    author: str
    email: str
    parent_ids: tuple[str, ...]
    timestamp: str

    def public(self) -> dict[str, Any]:
        """The commit object of Oxen's API reference (put-file response): these six fields."""
        return {
            "author": self.author,
            "email": self.email,
            "id": self.id,
            "message": self.message,
            "parent_ids": list(self.parent_ids),
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str
    commit: Commit


@dataclass
class _Branch:
    head: str | None = None
    files: dict[str, StoredFile] = field(default_factory=dict)


class RepoStore:
    """Every uploaded file by location; thread-safe. The bytes are kept in memory (the
    upload route refuses bodies over `SandboxConfig.upload_max_bytes`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._branches: dict[tuple[str, str, str], _Branch] = {}

    def put(self, where: Location, data: bytes, *, message: str, author: str, email: str) -> Commit:
        """Store `data` at `where` as a new commit on its branch; the commit."""
        with self._lock:
            branch = self._branches.setdefault((where.namespace, where.repo, where.branch), _Branch())
            commit = Commit(
                id=uuid.uuid4().hex,
                message=message,
                author=author,
                email=email,
                parent_ids=(branch.head,) if branch.head else (),
                timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            branch.head = commit.id
            branch.files[where.path] = StoredFile(data, content_type(where.path, data), commit)
        return commit

    def get(self, where: Location) -> StoredFile | None:
        with self._lock:
            branch = self._branches.get((where.namespace, where.repo, where.branch))
            return None if branch is None else branch.files.get(where.path)

    def clear(self) -> None:
        with self._lock:
            self._branches.clear()


def location(namespace: str, repo: str, branch: str, path: str) -> Location | None:
    """The location the route's parts name, or None when the path is not a file path:
    empty, ending in `/`, or with an empty, `.` or `..` segment (OWN: refused, not normalised)."""
    segments = path.split("/")
    if not all((namespace, repo, branch)) or any(s in ("", ".", "..") for s in segments):
        return None
    return Location(namespace, repo, branch, path)


def hub_location(url: str) -> Location | None:
    """The repository file a `https://hub.oxen.ai/api/repos/{ns}/{repo}/file/{branch}/{path}`
    URL names (percent-escapes decoded, query ignored), or None for any other URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "https" or (parts.hostname or "").lower() != HUB_HOST or parts.port not in (None, 443):
        return None
    if not parts.path.startswith(_HUB_PREFIX):
        return None
    pieces = parts.path[len(_HUB_PREFIX) :].split("/", 4)
    if len(pieces) != 5 or pieces[2] != "file":
        return None
    namespace, repo, _, branch, path = (unquote(piece) for piece in pieces)
    return location(namespace, repo, branch, path)


def content_type(path: str, data: bytes) -> str:
    """By the file's extension; by its first bytes when the extension says nothing."""
    dot = path.rfind(".")
    extension = path[dot:].lower() if dot > path.rfind("/") else ""
    known = _TYPES.get(extension) or (mimetypes.guess_type(path)[0] if extension else None)
    return known or sniff(data) or OCTET_STREAM


def sniff(data: bytes) -> str | None:
    """The media type the first bytes announce, for the formats the API takes; else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:10] == b"qt" else "video/mp4"
    return None
