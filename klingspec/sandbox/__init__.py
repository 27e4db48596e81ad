"""klingspec's offline emulator of the Oxen.ai inference API, served over real HTTP.

It speaks Oxen's era-C API for `kling-video-o3-pro-reference-to-video` and
`kling-video-o3-omni` as the Oxen.ai API fact sheet describes it (the modules here cite its
sections: "fact sheet 3.1"), produces small valid MP4 results, and injects faults on
request. Used by the README quick start (`klingspec run --sandbox`), the tests and the
benchmarks.

    from klingspec.sandbox import SandboxConfig, running_sandbox

    with running_sandbox(SandboxConfig(queue_seconds=0.05)) as base_url:
        ...  # point an httpx client at base_url

It also serves Oxen's repository upload and file routes, stands in for `hub.oxen.ai`,
and makes every generation fetch its input URLs as the real API would (docs/sandbox.md).

Modules: `config` (settings), `app` (routes), `validation` (model rules and messages),
`queue` (generation store), `state` (per-app state and the worker), `events` (SSE),
`faults` (fault syntax), `mp4` (MP4 files), `streams` (downloads and drops),
`catalog` (models and prices), `errors` (error bodies), `serving` (running it),
`repos` (uploaded files, hub URLs), `inputs` (fetching a generation's inputs).
"""

from klingspec.sandbox.app import SandboxApp, create_app
from klingspec.sandbox.config import FaultRule, SandboxConfig
from klingspec.sandbox.faults import HEADER as FAULT_HEADER
from klingspec.sandbox.serving import running_sandbox, serve

__all__ = ["FAULT_HEADER", "FaultRule", "SandboxApp", "SandboxConfig", "create_app", "running_sandbox", "serve"]
