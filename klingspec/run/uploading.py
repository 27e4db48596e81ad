"""Uploading local images before anything is submitted. Never prints.

A request that names a local image sends the image's hub URL
(`https://hub.oxen.ai/api/repos/{ns}/{repo}/file/{branch}/klingspec/{sha256}.{ext}`), so
the file must be in that repository before the request is sent. The file goes to the same
path on the API's own host (`{api}/repos/...`: the sandbox's loopback base with
`--sandbox`), where the key is sent (and only there: `client.RepoFiles`).

Each distinct image (by URL, which names its content) is uploaded at most once per API:

- The ledger says it is done (recorded after an earlier PUT, or found by a HEAD): nothing
  is sent. The in-process sandbox (`--sandbox`) forgets its files when it stops, so there
  the ledger is never trusted and the HEAD below decides.
- Otherwise `HEAD` asks the repository: a file of the same length at the content-addressed
  path is the same content (only klingspec writes under `klingspec/<sha256>`; Oxen
  documents no hash header for this route that is a SHA-256, so the length is what is
  compared), uploaded by another machine sharing the repository or by a run that crashed
  before recording it; it is recorded done without uploading.
- Else the file is read again and its SHA-256 checked against the one the request was
  compiled with (an image edited since would be uploaded under the wrong name: the run
  stops and says to run again), recorded `intent`, then `sent`, `PUT` as one commit, and
  recorded `done` with its commit id. A failure is recorded `failed` and raises
  `UploadFailed`: the caller submits nothing.

Two runs that need the same image at once upload it once: the upload is done under an
`flock` per content (`Ledger.uploading`), and the ledger is read again once it is held.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from klingspec.run.client import ApiError, OxenClient, RepoFiles
from klingspec.run.jobs import Job, Upload
from klingspec.run.ledger import (
    SANDBOX_PREFIX,
    UPLOAD_DONE,
    UPLOAD_FAILED,
    UPLOAD_INTENT,
    UPLOAD_SENT,
    Ledger,
)

DEFAULT_AUTHOR = ("klingspec", "klingspec@users.noreply.oxen.ai")
LOCK_WAIT_SECONDS = 600.0  # another run uploading the same image: a 50 MB PUT can take a while


class UploadFailed(Exception):
    """An image could not be uploaded; nothing may be submitted. The message names the file."""

    def __init__(self, upload: Upload, message: str):
        super().__init__(f"cannot upload {_shown(upload.path)}: {message}")
        self.upload = upload


@dataclass(frozen=True)
class UploadEvent:
    kind: str  # recorded (the ledger says done) | found (HEAD) | uploading | uploaded | failed
    upload: Upload
    message: str = ""
    commit_id: str | None = None


def distinct(jobs: Iterable[Job]) -> list[Upload]:
    """Every image the jobs send, once each (by URL), in the order first named."""
    seen: dict[str, Upload] = {}
    for job in jobs:
        for upload in job.uploads:
            seen.setdefault(upload.url, upload)
    return list(seen.values())


def pending(ledger: Ledger | None, api_url: str, uploads: Sequence[Upload]) -> list[Upload]:
    """The uploads the ledger does not record as done at `api_url` (all of them without a
    ledger, or at the in-process sandbox, which keeps no file between runs)."""
    if ledger is None or api_url.startswith(SANDBOX_PREFIX):
        return list(uploads)
    done = ledger.uploaded_urls(api_url)
    return [u for u in uploads if u.url not in done]


def author(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The commit's author: `KLINGSPEC_AUTHOR_NAME` / `KLINGSPEC_AUTHOR_EMAIL`, else git's
    `user.name` / `user.email`, else klingspec's own."""
    env = os.environ if environ is None else environ
    name = env.get("KLINGSPEC_AUTHOR_NAME") or _git_config("user.name") or DEFAULT_AUTHOR[0]
    email = env.get("KLINGSPEC_AUTHOR_EMAIL") or _git_config("user.email") or DEFAULT_AUTHOR[1]
    return name, email


def _git_config(key: str) -> str | None:
    try:
        found = subprocess.run(
            ["git", "config", "--get", key], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found or None


class Uploader:
    """Uploads what the ledger does not record as uploaded at `api_url` (the ledger's name
    for the API, as the runner's), reporting each step to `on_event`."""

    def __init__(
        self,
        client: OxenClient,
        ledger: Ledger,
        api_url: str,
        *,
        on_event: Callable[[UploadEvent], None] = lambda e: None,
        stop: threading.Event | None = None,
        commit_author: tuple[str, str] | None = None,
    ):
        self.files = RepoFiles(client)
        self.ledger = ledger
        self.api_url = api_url
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.author = commit_author or author()

    def upload_all(self, uploads: Sequence[Upload]) -> None:
        """Make every upload be there, one after another; raises `UploadFailed` at the first
        that cannot be (the ones before it stay recorded)."""
        for upload in uploads:
            self.ensure(upload)

    def ensure(self, upload: Upload) -> None:
        if self._recorded(upload):
            self.on_event(UploadEvent("recorded", upload))
            return
        with self.ledger.uploading(upload.sha256, self.stop, LOCK_WAIT_SECONDS) as held:
            if not held:
                raise UploadFailed(upload, "another run is uploading it and did not finish; run again")
            if self._recorded(upload):  # the other run did it while this one waited
                self.on_event(UploadEvent("recorded", upload))
                return
            self._upload(upload)

    def _recorded(self, upload: Upload) -> bool:
        if self.api_url.startswith(SANDBOX_PREFIX):
            return False
        record = self.ledger.upload(self.api_url, upload.url)
        return record is not None and record.done

    def _upload(self, upload: Upload) -> None:
        where = (upload.namespace, upload.repo, upload.branch, upload.remote_path)
        try:
            remote = self.files.head(*where)
        except ApiError as error:
            raise self._failed(upload, str(error)) from None
        if remote.exists and remote.size == upload.size:
            self._record(upload, UPLOAD_DONE)
            self.on_event(UploadEvent("found", upload))
            return
        data = self._read(upload)
        self._record(upload, UPLOAD_INTENT)
        self.on_event(UploadEvent("uploading", upload))
        self._record(upload, UPLOAD_SENT)
        name, email = self.author
        try:
            answer = self.files.put(
                *where,
                data,
                mime_type=upload.mime_type,
                message=f"klingspec: {upload.remote_path}",
                name=name,
                email=email,
            )
        except ApiError as error:
            raise self._failed(upload, str(error)) from None
        commit = answer.get("commit")
        commit_id = commit.get("id") if isinstance(commit, dict) else None
        commit_id = commit_id if isinstance(commit_id, str) else None
        self._record(upload, UPLOAD_DONE, commit_id=commit_id)
        self.on_event(UploadEvent("uploaded", upload, commit_id=commit_id))

    def _read(self, upload: Upload) -> bytes:
        """The file's bytes, which must be those the request was compiled with."""
        from klingspec.images import MAX_IMAGE_BYTES
        from klingspec.loading import read_bytes

        try:
            data = read_bytes(upload.path, MAX_IMAGE_BYTES)  # a regular file, never more than an image may be
        except OSError as error:
            raise self._failed(upload, f"cannot read it: {error.strerror or error}") from None
        if hashlib.sha256(data).hexdigest() != upload.sha256:
            raise self._failed(
                upload, "it changed since the script was checked; run again to check, price and upload the new image"
            )
        return data

    def _record(self, upload: Upload, state: str, *, commit_id: str | None = None, error: str | None = None) -> None:
        self.ledger.record_upload(
            self.api_url,
            upload.url,
            sha256=upload.sha256,
            size=upload.size,
            local_path=upload.path,
            state=state,
            commit_id=commit_id,
            error=error,
        )

    def _failed(self, upload: Upload, message: str) -> UploadFailed:
        self._record(upload, UPLOAD_FAILED, error=message)
        self.on_event(UploadEvent("failed", upload, message))
        return UploadFailed(upload, message)


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative
