"""Captioners: the template default, an OpenAI-compatible endpoint (a local test server), a local model."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from idvid.data.curate.captions import CaptionParams, caption
from idvid.data.curate.testing import translating
from idvid.data.curate.types import Clip, Context
from idvid.errors import InputError, ModelUnavailable


def _clip(meta=None) -> Clip:
    return Clip("c", "c.mp4", 0, 0, translating(6, 64, 96, 1, 0), 8.0, (96, 64), meta=meta or {})


def test_template_uses_list_prompts_or_annotations_and_no_http(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the template captioner must not open a connection")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    out = caption(_clip({"prompt": "A woman with red hair smiles.", "action": "smiling"}), {}, CaptionParams(),
                  Context(tmp_path))
    assert out == {"caption": "A woman with red hair smiles.", "action_phrase": "smiling", "captioner": "template"}
    out = caption(_clip(), {"yaw": [0.0, 20.0, 40.0], "yaw_mean": 20.0, "face_ratio": 0.2}, CaptionParams(),
                  Context(tmp_path))
    assert out["action_phrase"] == "turning head to the image right"
    assert out["caption"].startswith("a close-up of a person") and "turning head" in out["caption"]


class _Handler(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        reply = {"choices": [{"message": {"content": '{"description": "A man in a blue shirt talks.", '
                                                     '"action": "talking and nodding"}'}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_endpoint(tmp_path, endpoint, monkeypatch):
    monkeypatch.setenv("IDVID_TEST_KEY", "sk-test")
    p = CaptionParams(backend="openai", endpoint=endpoint, model="vlm", api_key_env="IDVID_TEST_KEY", frames=3)
    out = caption(_clip(), {}, p, Context(tmp_path))
    assert out["caption"] == "A man in a blue shirt talks." and out["action_phrase"] == "talking and nodding"
    assert out["captioner"] == "openai:vlm"
    (req,) = _Handler.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    content = req["body"]["messages"][0]["content"]
    images = [c for c in content if c["type"] == "image_url"]
    assert req["body"]["model"] == "vlm" and len(images) == 3
    assert images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_openai_endpoint_errors_are_one_line(tmp_path, monkeypatch):
    p = CaptionParams(backend="openai", endpoint="http://127.0.0.1:9/v1", timeout=2.0)
    with pytest.raises(InputError, match="caption endpoint"):
        caption(_clip(), {}, p, Context(tmp_path))
    monkeypatch.delenv("IDVID_MISSING_KEY", raising=False)
    p = CaptionParams(backend="openai", endpoint="http://127.0.0.1:9/v1", api_key_env="IDVID_MISSING_KEY")
    with pytest.raises(InputError, match="IDVID_MISSING_KEY"):
        caption(_clip(), {}, p, Context(tmp_path))


def test_local_model_needs_a_folder(tmp_path):
    p = CaptionParams(backend="local", model_path=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelUnavailable, match="never downloaded"):
        caption(_clip(), {}, p, Context(tmp_path))
