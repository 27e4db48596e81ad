"""The repository file routes over real HTTP: upload, read, existence checks, privacy, limits, faults."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from sandbox_helpers import make_client

from klingspec.sandbox import FAULT_HEADER, FaultRule

FILE = "/repos/ada/assets/file/main/klingspec/cafe.png"
FORM = {"message": "Add cafe.png", "name": "Ada", "email": "ada@example.com"}
UNAUTHENTICATED = {
    "error": {"type": "unauthenticated", "title": "You must be authenticated to access this resource."},
    "status": "error",
    "status_message": "unauthenticated",
}
NOT_FOUND = {
    "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
    "status": "error",
    "status_message": "resource_not_found",
}


def png(size: tuple[int, int] = (4, 3), color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def upload(client: httpx.Client, path: str, data: bytes, **form: str) -> httpx.Response:
    return client.put(path, files={"file": ("upload.bin", data)}, data=FORM | form)


def test_an_upload_answers_a_commit_and_serves_the_same_bytes(client: httpx.Client, base_url: str) -> None:
    data = png()
    response = upload(client, FILE, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"status", "status_message", "commit"}
    assert (body["status"], body["status_message"]) == ("success", "resource_found")
    commit = body["commit"]
    assert set(commit) == {"author", "email", "id", "message", "parent_ids", "timestamp"}
    assert (commit["author"], commit["email"], commit["message"]) == ("Ada", "ada@example.com", "Add cafe.png")
    assert re.fullmatch(r"[0-9a-f]{32}", commit["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", commit["timestamp"])
    got = httpx.get(base_url + FILE)  # a public repository: no bearer needed
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "image/png"
    head = httpx.head(base_url + FILE)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data)) and head.headers["content-type"] == "image/png"


def test_each_upload_to_a_branch_is_a_commit_on_the_last_one(client: httpx.Client, base_url: str) -> None:
    path = "/repos/ada/chain/file/main/a.png"
    first = upload(client, path, png(color="red")).json()["commit"]
    second = upload(client, "/repos/ada/chain/file/main/b.png", png(color="blue")).json()["commit"]
    third = upload(client, path, png(color="green")).json()["commit"]
    assert first["parent_ids"] == [] and second["parent_ids"] == [first["id"]]
    assert third["parent_ids"] == [second["id"]]
    assert httpx.get(base_url + path).content == png(color="green")  # the newest version
    other_branch = upload(client, "/repos/ada/chain/file/dev/a.png", png()).json()["commit"]
    assert other_branch["parent_ids"] == []
    assert httpx.get(base_url + "/repos/ada/chain/file/dev/b.png").status_code == 404


@pytest.mark.parametrize(
    "path,data,expected",
    [
        ("/repos/a/r/file/main/x.jpg", png(), "image/jpeg"),  # the extension decides
        ("/repos/a/r/file/main/notes.txt", b"hello", "text/plain"),
        ("/repos/a/r/file/main/blob", png(), "image/png"),  # no extension: the first bytes
        ("/repos/a/r/file/main/blob2", b"\x00\x01", "application/octet-stream"),
    ],
)
def test_the_content_type_comes_from_the_extension_else_the_content(
    client: httpx.Client, base_url: str, path: str, data: bytes, expected: str
) -> None:
    assert upload(client, path, data).status_code == 200
    assert httpx.get(base_url + path).headers["content-type"] == expected


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_uploading_needs_a_bearer_token(base_url: str, headers: dict[str, str]) -> None:
    response = httpx.put(base_url + FILE, files={"file": ("x.png", png())}, data=FORM, headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHENTICATED)


def test_a_pinned_api_key_guards_uploads(sandbox_with: Any) -> None:
    with sandbox_with(api_key="secret") as url:
        with make_client(url, token="other") as wrong, make_client(url, token="secret") as right:
            assert upload(wrong, FILE, png()).status_code == 401
            assert upload(right, FILE, png()).status_code == 200


@pytest.mark.parametrize("missing", ["file", "message", "name", "email"])
def test_every_form_field_is_required(client: httpx.Client, base_url: str, missing: str) -> None:
    form = {k: v for k, v in FORM.items() if k != missing}
    # Still a multipart body without the file: a plain text part stands in.
    files = {"note": (None, "x")} if missing == "file" else {"file": ("x.png", png())}
    response = client.put(FILE.replace("cafe", f"no-{missing}"), files=files, data=form)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_params",
            "title": "Invalid parameters supplied, please check your request and try again.",
            "detail": f"Missing form field(s): {missing}",
        },
        "status": "error",
        "status_message": "invalid_params",
    }
    assert httpx.head(base_url + FILE.replace("cafe", f"no-{missing}")).status_code == 404


def test_the_body_must_be_a_multipart_form_with_one_file(client: httpx.Client) -> None:
    as_json = client.put(FILE, json={"file": "x"} | FORM)
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["detail"]
    as_text = client.put(FILE, files={"file": (None, "not a file part")}, data=FORM)
    assert as_text.status_code == 400 and "must be a file" in as_text.json()["error"]["detail"]
    two = client.put(FILE, files=[("file", ("a.png", png())), ("extra", ("b.png", png()))], data=FORM)
    assert two.status_code == 400 and "Too many files" in two.json()["error"]["detail"]
    empty = client.put(FILE, files={"file": ("x.png", png())}, data=FORM | {"message": ""})
    assert empty.json()["error"]["detail"] == "Missing form field(s): message"


def test_a_path_with_an_empty_segment_is_refused(client: httpx.Client) -> None:
    response = client.put("/repos/ada/assets/file/main/a//b.png", files={"file": ("x.png", png())}, data=FORM)
    assert response.status_code == 400
    assert response.json()["error"]["detail"] == "Invalid file path: 'a//b.png'"


def test_a_missing_file_is_not_found(client: httpx.Client, base_url: str) -> None:
    path = "/repos/ada/assets/file/main/never/uploaded.png"
    assert httpx.head(base_url + path).status_code == 404
    response = httpx.get(base_url + path)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert client.get(path).status_code == 404  # a bearer changes nothing


def test_a_private_repository_is_read_only_with_a_token(sandbox_with: Any) -> None:
    path = "/repos/ada/secret/file/main/face.png"
    with sandbox_with(private_repos=frozenset({"ada/secret"})) as url, make_client(url) as c:
        assert upload(c, path, png()).status_code == 200
        anonymous = httpx.get(url + path)
        assert (anonymous.status_code, anonymous.json()) == (401, UNAUTHENTICATED)
        assert httpx.head(url + path).status_code == 401
        assert httpx.get(url + "/repos/ada/secret/file/main/absent.png").status_code == 401  # existence not told
        assert c.get(path).content == png() and c.head(path).status_code == 200
        assert c.get("/repos/ada/secret/file/main/absent.png").status_code == 404
        assert httpx.get(url + "/repos/ada/public/file/main/face.png").status_code == 404  # others stay public


def test_an_upload_over_the_limit_is_refused_and_not_stored(sandbox_with: Any) -> None:
    with sandbox_with(upload_max_bytes=2048) as url, make_client(url) as c:
        declared = upload(c, FILE, b"x" * 4096)  # Content-Length says so up front
        assert declared.status_code == 413
        assert declared.json() == {
            "error": {
                "type": "payload_too_large",
                "title": "The request body is too large.",
                "detail": "Uploads are limited to 2048 bytes",
            },
            "status": "error",
            "status_message": "payload_too_large",
        }
        request = c.build_request("PUT", FILE, files={"file": ("x.bin", b"x" * 4096)}, data=FORM)
        body = request.read()

        def chunked() -> Any:  # no Content-Length: refused while it streams in
            for i in range(0, len(body), 512):
                yield body[i : i + 512]

        streamed = c.put(FILE, content=chunked(), headers={"content-type": request.headers["content-type"]})
        assert streamed.status_code == 413
        assert httpx.head(url + FILE).status_code == 404
        assert upload(c, FILE, b"x" * 1000).status_code == 200  # under the limit


def test_faults_apply_to_uploads(client: httpx.Client, base_url: str) -> None:
    failed = client.put(
        "/repos/ada/f/file/main/503.png", files={"file": ("x", png())}, data=FORM, headers={FAULT_HEADER: "503"}
    )
    assert failed.status_code == 503
    assert httpx.head(base_url + "/repos/ada/f/file/main/503.png").status_code == 404  # nothing stored
    with pytest.raises(httpx.RemoteProtocolError):
        client.put(
            "/repos/ada/f/file/main/drop.png", files={"file": ("x", png())}, data=FORM, headers={FAULT_HEADER: "drop"}
        )
    # Like a dropped enqueue: the work was done, only the answer was lost.
    assert httpx.get(base_url + "/repos/ada/f/file/main/drop.png").content == png()
    data = b"y" * 20_000
    started = time.monotonic()
    slow = client.put(
        "/repos/ada/f/file/main/slow.bin", files={"file": ("x", data)}, data=FORM, headers={FAULT_HEADER: "slow=50000"}
    )
    assert slow.status_code == 200 and time.monotonic() - started >= 0.3  # 20 KB at 50 KB/s


def test_download_faults_apply_to_repository_files(client: httpx.Client, base_url: str) -> None:
    data = bytes(range(256)) * 40
    assert upload(client, "/repos/ada/f/file/main/data.bin", data).status_code == 200
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream(
            "GET", base_url + "/repos/ada/f/file/main/data.bin", headers={FAULT_HEADER: "truncate=100"}
        ) as r:
            for chunk in r.iter_bytes():
                received += chunk
    assert bytes(received) == data[:100]


def test_config_fault_rules_and_stats_cover_the_file_routes(sandbox_with: Any) -> None:
    rule = FaultRule("status=503, retry-after=1", path="/api/repos/*", method="PUT", times=1)
    with sandbox_with(faults=(rule,)) as url, make_client(url) as c:
        assert upload(c, FILE, png()).status_code == 503
        assert upload(c, FILE, png()).status_code == 200
        c.head(FILE), c.get(FILE), httpx.get(url + FILE)
        requests = c.get("/_sandbox/stats").json()["requests"]
        route = "/api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
        assert requests == {f"PUT {route}": 2, f"HEAD {route}": 1, f"GET {route}": 2}
        c.post("/_sandbox/reset")
        assert c.head(FILE).status_code == 404  # reset forgets uploads too
