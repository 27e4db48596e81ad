"""Generations fetch their input URLs as the real API would, over real HTTP.

Hub URLs resolve to the sandbox's own uploads; loopback URLs are fetched from a tiny local
HTTP server this module runs; the reserved example domains are taken to exist; anything
else is out of reach. A bad input fails a queued job (era C) or the sync request.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image
from sandbox_helpers import OMNI, REF, enqueue, make_client, wait_terminal

from klingspec.sandbox.catalog import MODELS
from klingspec.sandbox.inputs import input_urls
from klingspec.sandbox.validation import UPSTREAM_PREFIX

FORM = {"message": "Add an input", "name": "Ada", "email": "ada@example.com"}
HUB = "https://hub.oxen.ai/api/repos"
GOOD = "https://assets.example.com/refs/cafe.jpg"


def image(fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(out, fmt)
    return out.getvalue()


PNG = image()
_AT = PNG.index(b"IDAT") + 6
BROKEN_PNG = PNG[:_AT] + bytes([PNG[_AT] ^ 0xFF]) + PNG[_AT + 1 :]  # opens, but its checksum fails


class _Files(BaseHTTPRequestHandler):
    """What the local server answers, by path."""

    def do_GET(self) -> None:
        routes: dict[str, tuple[int, str, bytes]] = {
            "/img.png": (200, "image/png", PNG),
            "/photo.jpg": (200, "image/jpeg", image("JPEG")),
            "/anim.gif": (200, "image/gif", image("GIF")),
            "/pic.webp": (200, "image/webp", image("WEBP")),
            "/named.png": (200, "text/html; charset=utf-8", b"<html><body>Sign in</body></html>"),
            "/corrupt.png": (200, "image/png", BROKEN_PNG),
            "/short.png": (200, "image/png", PNG[:40]),
            "/gone.png": (404, "text/plain", b"no"),
            "/big.png": (200, "image/png", PNG + b"\0" * 200_000),
            "/slow.png": (200, "image/png", PNG),  # after a second
        }
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow.png":
            time.sleep(1.0)
        status, kind, body = routes.get(self.path, (404, "text/plain", b"?"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def upload(client: httpx.Client, where: str, data: bytes) -> None:
    response = client.put(f"/repos/{where}", files={"file": ("f", data)}, data=FORM)
    assert response.status_code == 200, response.text


def run_job(client: httpx.Client, **body: Any) -> dict[str, Any]:
    (gid,) = enqueue(client, prompt="a", **body)
    return wait_terminal(client, gid)


def failed_with(client: httpx.Client, message: str, **body: Any) -> None:
    job = run_job(client, **body)
    assert (job["status"], job["error_message"], job["result_url"]) == ("failed", UPSTREAM_PREFIX + message, None)


# --- hub URLs: the sandbox's own repository store ---------------------------------------


def test_a_hub_url_uploaded_before_is_fetched_and_the_job_succeeds(client: httpx.Client) -> None:
    upload(client, "ada/assets/file/main/klingspec/abc.png", PNG)
    job = run_job(client, input_image=[f"{HUB}/ada/assets/file/main/klingspec/abc.png"])
    assert job["status"] == "succeeded" and job["error_message"] is None


def test_a_hub_url_never_uploaded_fails_the_job_and_sends_the_failure_event(client: httpx.Client) -> None:
    url = f"{HUB}/ada/assets/file/main/klingspec/never.png"
    with client.stream("GET", "/events") as stream:
        response = client.post("/ai/queue", json={"model": REF, "prompt": "a", "input_image": [url]})
        assert response.status_code == 200  # enqueue checks only the model and num_generations
        (generation,) = response.json()["generations"]
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: media_generation_completed"
        event = json.loads(next(lines).removeprefix("data: "))
    message = f"{UPSTREAM_PREFIX}input_image[0]: 404 Client Error: Not Found for url: {url}"
    assert event == {
        "generation_id": generation["generation_id"],
        "status": "failed",
        "media_type": "video",
        "error": message,
    }
    job = wait_terminal(client, generation["generation_id"])
    assert (job["status"], job["error_message"]) == ("failed", message)


def test_a_private_repository_cannot_be_fetched_by_the_api(sandbox_with: Any) -> None:
    with sandbox_with(private_repos=frozenset({"ada/secret"})) as url, make_client(url) as c:
        upload(c, "ada/secret/file/main/face.png", PNG)
        upload(c, "ada/open/file/main/face.png", PNG)
        secret = f"{HUB}/ada/secret/file/main/face.png"
        failed_with(
            c,
            f"start_image_url: 401 Client Error: Unauthorized for url: {secret} (inputs must be publicly downloadable)",
            start_image_url=secret,
        )
        assert run_job(c, start_image_url=f"{HUB}/ada/open/file/main/face.png")["status"] == "succeeded"
        absent = f"{HUB}/ada/secret/file/main/absent.png"  # existence is not told either
        failed_with(
            c,
            f"input_image: 401 Client Error: Unauthorized for url: {absent} (inputs must be publicly downloadable)",
            input_image=absent,
        )


def test_an_uploaded_file_that_is_not_an_image_fails_the_job(client: httpx.Client) -> None:
    upload(client, "ada/assets/file/main/notes.png", b"just some text")
    url = f"{HUB}/ada/assets/file/main/notes.png"
    failed_with(
        client,
        f"input_image[0]: Unsupported file type 'image/png' for url: {url}. "
        "Supported file types: image/jpeg, image/png, image/webp, image/gif.",
        input_image=[url],
    )


def test_other_hub_urls_are_not_found(client: httpx.Client) -> None:
    # Oxen's own public example image: the sandbox's hub has only what was uploaded to it.
    url = "https://hub.oxen.ai/api/repos/elau/assets/file/main/bloxy/bloxy_cropped_512x512.png"
    failed_with(client, f"input_image[0]: 404 Client Error: Not Found for url: {url}", input_image=[url])
    result = "https://hub.oxen.ai/api/repos/x/y/files/z/video.mp4"
    failed_with(client, f"input_image[0]: 404 Client Error: Not Found for url: {result}", input_image=[result])


# --- loopback URLs: fetched for real ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/img.png", "/photo.jpg", "/anim.gif", "/pic.webp", "/redirect"])
def test_a_loopback_image_is_fetched_and_the_job_succeeds(client: httpx.Client, files_url: str, path: str) -> None:
    assert run_job(client, input_image=[files_url + path])["status"] == "succeeded"


def test_a_loopback_page_that_is_not_an_image_fails_the_job(client: httpx.Client, files_url: str) -> None:
    url = files_url + "/named.png"
    failed_with(
        client,
        f"input_image[0]: Unsupported file type 'text/html' for url: {url}. "
        "Supported file types: image/jpeg, image/png, image/webp, image/gif.",
        input_image=[url],
    )


def test_loopback_failures_have_their_own_messages(sandbox_with: Any, files_url: str) -> None:
    with sandbox_with(input_fetch_timeout=0.3, input_max_bytes=100_000) as url, make_client(url) as c:
        gone, corrupt = files_url + "/gone.png", files_url + "/corrupt.png"
        failed_with(c, f"input_image[0]: 404 Client Error: Not Found for url: {gone}", input_image=[gone])
        failed_with(
            c, f"input_image[0]: Could not decode the image (image/png) at url: {corrupt}", input_image=[corrupt]
        )
        slow = files_url + "/slow.png"
        failed_with(c, f"input_image[0]: Timed out after 0.3 s downloading url: {slow}", input_image=[slow])
        big = files_url + "/big.png"
        failed_with(c, f"input_image[0]: The file at url: {big} is larger than 100000 bytes", input_image=[big])
        failed_with(
            c, f"input_image[0]: Too many redirects for url: {files_url}/loop", input_image=[files_url + "/loop"]
        )
        closed = "http://127.0.0.1:9/img.png"  # nothing listens on the discard port
        failed_with(c, f"input_image[0]: Failed to download url: {closed} (ConnectError)", input_image=[closed])


def test_a_loopback_url_of_the_sandbox_itself_is_read_without_credentials(sandbox_with: Any) -> None:
    with sandbox_with(private_repos=frozenset({"ada/secret"})) as url, make_client(url) as c:
        upload(c, "ada/open/file/main/face.png", PNG)
        upload(c, "ada/secret/file/main/face.png", PNG)
        assert run_job(c, input_image=[f"{url}/repos/ada/open/file/main/face.png"])["status"] == "succeeded"
        secret = f"{url}/repos/ada/secret/file/main/face.png"
        failed_with(c, f"input_image[0]: 401 Client Error: Unauthorized for url: {secret}", input_image=[secret])


# --- reserved example domains, unreachable hosts ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    [GOOD, "https://example.org/a.PNG", "http://cdn.example.net/x", "https://pics.example/face.webp"],
)
def test_example_domain_urls_are_taken_as_images_without_fetching(client: httpx.Client, url: str) -> None:
    assert run_job(client, input_image=[url])["status"] == "succeeded"


@pytest.mark.parametrize(
    "url,reason",
    [
        ("https://assets.example.com/missing/cafe.jpg", "404 Client Error: Not Found for url: {url}"),
        ("https://assets.example.com/refs/missing.png", "404 Client Error: Not Found for url: {url}"),
        (
            "https://assets.example.com/refs/cafe.txt",
            "Unsupported file type 'text/plain' for url: {url}. "
            "Supported file types: image/jpeg, image/png, image/webp, image/gif.",
        ),
        (
            "https://example.com/page.html",
            "Unsupported file type 'text/html' for url: {url}. "
            "Supported file types: image/jpeg, image/png, image/webp, image/gif.",
        ),
        ("https://assets.images.invalid/a.png", "Failed to resolve host 'assets.images.invalid' for url: {url}"),
        (
            "https://e.com/a.png",
            "Failed to connect to 'e.com' for url: {url} (the sandbox reaches no network: "
            "use a hub.oxen.ai, loopback or example.com URL)",
        ),
        ("ftp://example.com/a.png", "Invalid URL"),
        ("cafe.png", "Invalid URL"),
        ("data:image/png;base64,iVBORw0KGgo=", "data URIs are not accepted; upload the file and pass its URL"),
    ],
)
def test_inputs_that_cannot_be_fetched_fail_the_job(client: httpx.Client, url: str, reason: str) -> None:
    failed_with(client, "input_image[0]: " + reason.format(url=url), input_image=[url])


def test_every_input_field_is_fetched_and_named_in_the_message(client: httpx.Client) -> None:
    bad = "https://assets.example.com/missing.png"
    not_found = f"404 Client Error: Not Found for url: {bad}"
    cases = [
        ({"start_image_url": bad}, "start_image_url"),
        ({"start_image_url": GOOD, "tail_image_url": bad}, "tail_image_url"),
        ({"elements": [{"frontal_image_url": bad}]}, "elements[0].frontal_image_url"),
        (
            {
                "elements": [
                    {"frontal_image_url": GOOD},
                    {"frontal_image_url": GOOD, "reference_image_urls": [GOOD, bad]},
                ]
            },
            "elements[1].reference_image_urls[1]",
        ),
    ]
    for body, field in cases:
        failed_with(client, f"{field}: {not_found}", **body)
    # The first bad input in body order decides.
    failed_with(client, f"input_image[1]: {not_found}", input_image=[GOOD, bad], start_image_url=bad)
    full = {
        "input_image": [GOOD],
        "start_image_url": GOOD,
        "tail_image_url": GOOD,
        "elements": [{"frontal_image_url": GOOD, "reference_image_urls": [GOOD]}],
    }
    assert run_job(client, **full)["status"] == "succeeded"


def test_a_non_string_url_fails_the_job(client: httpx.Client) -> None:
    failed_with(
        client, "elements[0].frontal_image_url: Input should be a valid string", elements=[{"frontal_image_url": 7}]
    )


def test_omni_fetches_its_input_video_as_a_video(client: httpx.Client) -> None:
    (ok,) = enqueue(client, model=OMNI, prompt="a", input_video="https://assets.example.com/clip.mp4")
    assert wait_terminal(client, ok)["status"] == "succeeded"
    url = "https://assets.example.com/clip.png"
    (bad,) = enqueue(client, model=OMNI, prompt="a", input_video=url)
    job = wait_terminal(client, bad)
    assert job["error_message"] == (
        f"{UPSTREAM_PREFIX}input_video: Unsupported file type 'image/png' for url: {url}. "
        "Supported file types: video/mp4, video/quicktime."
    )


def test_model_errors_come_before_fetching(client: httpx.Client) -> None:
    job = run_job(client, duration=99, input_image=["https://assets.example.com/missing.png"])
    assert job["error_message"].startswith(UPSTREAM_PREFIX + "Input should be")


def test_an_input_url_used_twice_is_fetched_once(sandbox_with: Any, files_url: str) -> None:
    with sandbox_with() as url, make_client(url) as c:
        upload(c, "ada/a/file/main/x.png", PNG)
        same = f"{url}/repos/ada/a/file/main/x.png"
        assert run_job(c, input_image=[same, same], start_image_url=same)["status"] == "succeeded"
        requests = c.get("/_sandbox/stats").json()["requests"]
        assert requests["GET /api/repos/{namespace}/{repo}/file/{branch}/{path:path}"] == 1


# --- the sync endpoint -----------------------------------------------------------------------


def test_the_sync_endpoint_answers_a_bad_input_with_the_error_body(client: httpx.Client) -> None:
    url = f"{HUB}/ada/assets/file/main/nothing-here.png"
    response = client.post("/ai/videos/generate", json={"model": REF, "prompt": "a", "input_image": [url]})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_params",
            "title": "Invalid parameters supplied, please check your request and try again.",
            "detail": f"{UPSTREAM_PREFIX}input_image[0]: 404 Client Error: Not Found for url: {url}",
        },
        "status": "error",
        "status_message": "invalid_params",
    }
    upload(client, "ada/assets/file/main/nothing-here.png", PNG)
    again = client.post("/ai/videos/generate", json={"model": REF, "prompt": "a", "input_image": [url]})
    assert again.status_code == 200 and again.json()["videos"][0]["url"]


# --- which fields are inputs ---------------------------------------------------------------


def test_input_urls_lists_every_documented_field_in_body_order() -> None:
    body = {
        "prompt": "a",
        "tail_image_url": "t",
        "input_image": ["i0", "i1"],
        "elements": [
            {"frontal_image_url": "f0", "reference_image_urls": ["r0", "r1"]},
            "junk",
            {"frontal_image_url": None},
        ],
        "start_image_url": "s",
        "input_video": "v",
        "negative_prompt": "https://example.com/not-an-input.png",
    }
    listed = [(i.field, i.value, i.kind) for i in input_urls(body, MODELS[OMNI])]
    assert listed == [
        ("input_image[0]", "i0", "image"),
        ("input_image[1]", "i1", "image"),
        ("start_image_url", "s", "image"),
        ("tail_image_url", "t", "image"),
        ("elements[0].frontal_image_url", "f0", "image"),
        ("elements[0].reference_image_urls[0]", "r0", "image"),
        ("elements[0].reference_image_urls[1]", "r1", "image"),
        ("input_video", "v", "video"),
    ]
    assert [i.field for i in input_urls({"input_image": "one"}, MODELS[REF])] == ["input_image"]
    assert "input_video" not in [i.field for i in input_urls(body, MODELS[REF])]  # not a parameter of REF
