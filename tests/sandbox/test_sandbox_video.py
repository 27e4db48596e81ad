"""The sandbox's results are real footage (klingspec/sandbox/footage.py), checked over real
HTTP and decoded with PyAV: the requested length, the prompts' colours shot by shot, a start
image's colour first, the same bytes for the same request; klingspec's own video module
(probe, last frame, join) reads them; without PyAV, or padded, the pure-Python grey file."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

av = pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from PIL import Image  # noqa: E402
from sandbox_helpers import OMNI, enqueue, make_client, wait_terminal  # noqa: E402

from klingspec.run.video import join, last_frame, probe  # noqa: E402
from klingspec.sandbox import footage  # noqa: E402
from klingspec.sandbox.mp4 import VideoSpec, mp4_bytes  # noqa: E402

FORM = {"message": "Add a frame", "name": "Ada", "email": "ada@example.com"}
HUB = "https://hub.oxen.ai/api/repos"
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
TOLERANCE = 12  # per channel, after yuv420p and H.264


def result(client: httpx.Client, **body: Any) -> bytes:
    """Queue one generation, wait for it, download its video (Content-Length checked)."""
    (gid,) = enqueue(client, **body)
    job = wait_terminal(client, gid)
    assert job["status"] == "succeeded", job
    response = client.get(job["result_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    return response.content


def frames(data: bytes) -> list[tuple[int, int, int]]:
    """The centre pixel of every decoded frame, in order."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        out = []
        for frame in container.decode(stream):
            image = frame.to_image()
            out.append(image.getpixel((image.width // 2, image.height // 2)))
        return out


def seconds_of(data: bytes, kind: str = "video") -> float:
    with av.open(io.BytesIO(data)) as container:
        (stream,) = [s for s in container.streams if s.type == kind]
        return float(stream.duration * stream.time_base)


def near(pixel: tuple[int, ...], colour: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(pixel, colour, strict=True))


def png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 18)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def upload(client: httpx.Client, where: str, data: bytes) -> str:
    response = client.put(f"/repos/{where}", files={"file": ("frame.png", data)}, data=FORM)
    assert response.status_code == 200, response.text
    return f"{HUB}/{where}"


@pytest.mark.parametrize("seconds", [3, 15])
def test_a_result_is_h264_lasting_exactly_the_requested_seconds(client: httpx.Client, seconds: int) -> None:
    data = result(client, prompt="a red kite", duration=seconds)
    with av.open(io.BytesIO(data)) as container:
        [video] = container.streams  # no sound was asked for
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == footage.SIZES["16:9"]
    assert seconds_of(data) == seconds
    assert len(frames(data)) == seconds * footage.FPS


def test_every_frame_has_the_first_colour_word_of_the_prompt(client: httpx.Client) -> None:
    shown = frames(result(client, prompt="A Red balloon drifts over a blue sea", duration=3))
    assert all(near(pixel, RED) for pixel in shown), shown


def test_a_prompt_without_a_colour_word_gets_a_stable_colour_of_its_own(client: httpx.Client) -> None:
    one = frames(result(client, prompt="a quiet harbour at dawn", duration=3))
    other = frames(result(client, prompt="a busy market at noon", duration=3))
    assert near(one[0], footage.colour_of("a quiet harbour at dawn"))
    assert len(set(one)) == 1 and not near(one[0], other[0])


def test_each_shot_shows_its_own_colour_for_its_seconds(client: httpx.Client) -> None:
    shots = [{"prompt": "a green field", "duration": 3}, {"prompt": "then a blue door", "duration": 2}]
    data = result(client, multi_prompt=shots)
    shown = frames(data)
    assert seconds_of(data) == 5 and len(shown) == 5 * footage.FPS
    boundary = 3 * footage.FPS
    assert all(near(p, GREEN) for p in shown[:boundary]) and all(near(p, BLUE) for p in shown[boundary:]), shown


def test_a_start_image_the_sandbox_read_is_the_first_frame(client: httpx.Client) -> None:
    teal = (30, 140, 150)
    url = upload(client, "ada/frames/file/main/start.png", png(teal))
    shown = frames(result(client, prompt="a yellow taxi", duration=3, start_image_url=url))
    assert all(near(p, teal) for p in shown[: footage.START_FRAMES]), shown
    assert all(near(p, YELLOW) for p in shown[footage.START_FRAMES :]), shown


def test_a_start_image_on_an_example_domain_is_not_read_and_changes_nothing(client: httpx.Client) -> None:
    shown = frames(result(client, prompt="a yellow taxi", duration=3, start_image_url="https://x.example.com/a.png"))
    assert all(near(p, YELLOW) for p in shown), shown


def test_the_same_request_gives_the_same_bytes(client: httpx.Client) -> None:
    body = {"multi_prompt": [{"prompt": "orange sky", "duration": 3}, {"prompt": "purple night", "duration": 4}]}
    assert result(client, **body) == result(client, **body)
    assert result(client, **body) != result(client, multi_prompt=[{"prompt": "orange sky", "duration": 7}])


def test_sound_asked_for_is_a_track_of_silence_as_long_as_the_video(client: httpx.Client) -> None:
    data = result(client, prompt="white snow", duration=5, generate_audio=True)
    with av.open(io.BytesIO(data)) as container:
        [audio] = container.streams.audio
        assert audio.codec_context.name == "aac"
        silent = all(not any(bytes(plane)) for frame in container.decode(audio) for plane in frame.planes)
    assert silent
    assert seconds_of(data, "audio") == 5 and seconds_of(data) == 5


@pytest.mark.parametrize(("aspect", "size"), [("9:16", (54, 96)), ("1:1", (64, 64)), ("16:9", (96, 54))])
def test_the_picture_follows_the_aspect_ratio(client: httpx.Client, aspect: str, size: tuple[int, int]) -> None:
    data = result(client, prompt="black cat", duration=3, aspect_ratio=aspect)
    with av.open(io.BytesIO(data)) as container:
        context = container.streams.video[0].codec_context
        assert (context.width, context.height) == size


def test_a_sync_answer_carries_the_same_footage(client: httpx.Client) -> None:
    body = {"model": OMNI, "prompt": "a green bottle", "duration": 3}
    answer = client.post("/ai/videos/generate", json=body | {"response_format": "b64_json"})
    assert answer.status_code == 200, answer.text
    data = base64.b64decode(answer.json()["videos"][0]["b64_json"])
    assert seconds_of(data) == 3 and all(near(p, GREEN) for p in frames(data))
    by_url = client.post("/ai/videos/generate", json=body)
    assert client.get(by_url.json()["videos"][0]["url"]).content == data


def test_klingspec_reads_the_results_as_a_film_of_scenes(client: httpx.Client, tmp_path: Path) -> None:
    """Scene 2 starts from scene 1's last frame; the joined film lasts the sum of its scenes."""
    first = tmp_path / "scene1.mp4"
    shots = [{"prompt": "red dawn", "duration": 3}, {"prompt": "blue noon", "duration": 3}]
    first.write_bytes(result(client, multi_prompt=shots, generate_audio=True))
    assert probe(str(first)).seconds == 6
    end = last_frame(str(first))
    assert near(end.convert("RGB").getpixel((end.width // 2, end.height // 2)), BLUE)

    saved = io.BytesIO()
    end.save(saved, "PNG")
    url = upload(client, "ada/film/file/main/scene1-last.png", saved.getvalue())
    second = tmp_path / "scene2.mp4"
    second.write_bytes(result(client, prompt="yellow dusk", duration=4, start_image_url=url, generate_audio=True))
    shown = frames(second.read_bytes())
    assert near(shown[0], BLUE) and near(shown[-1], YELLOW), shown

    joined = join([str(first), str(second)], str(tmp_path / "film.mp4"))
    assert joined.remuxed and joined.seconds == 6 + 4


@pytest.fixture
def no_pyav(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(footage, "available", lambda: False)
    yield


def test_without_pyav_a_result_is_the_pure_python_grey_file(no_pyav: None, sandbox_with: Any) -> None:
    with sandbox_with() as url, make_client(url) as client:
        data = result(client, prompt="a red kite", duration=5)
    assert data == mp4_bytes(VideoSpec(5))


def test_a_padded_result_stays_the_pure_python_file_at_the_padded_size(sandbox_with: Any) -> None:
    with sandbox_with(file_size=300_000) as url, make_client(url) as client:
        data = result(client, prompt="a red kite", duration=5)
    assert len(data) == 300_000 and data == mp4_bytes(VideoSpec(5, pad_to=300_000))
