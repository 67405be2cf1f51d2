"""Stage `caption`: an overall description and an action phrase per clip, from a pluggable captioner.

Backends:
* `template` (default) — no model. Uses the source's own `prompt` / `action_phrase` (or `action`) when
  a list input gives them (synthetic clips carry exact ones); otherwise writes a description from the annotations (head
  turn, nod, motion intensity, framing).
* `local` — a vision-language model loaded with transformers from `model_path` (never downloaded):
  a few frames in, the same JSON answer as below out.
* `openai` — any OpenAI-compatible chat-completions `endpoint` (vLLM, llama.cpp server, a hosted API):
  frames sent as base64 JPEG data URLs; the key, if any, is read from the environment variable named by
  `api_key_env`. The HTTP client is created only for this backend.

Model backends are asked for `{"description": ..., "action": ...}` (MotionCharacter's two captions: an
overall description and an action phrase); a reply that is not JSON becomes the description and its
action is left empty.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from idvid.data.curate.frames import even_indices, resize_long_side
from idvid.data.curate.params import param
from idvid.data.curate.registry import stage
from idvid.data.curate.types import Clip, Context
from idvid.errors import InputError, ModelUnavailable

INSTRUCTION = (
    "These are frames of one video clip showing a person. Reply with JSON only: "
    '{"description": "<one or two sentences: the person\'s appearance, clothing, setting and what '
    'happens>", "action": "<a short action phrase for the person\'s facial and body movement, e.g. '
    '\'turning head to the left and smiling\'>"}'
)


@dataclass(frozen=True)
class CaptionParams:
    backend: str = param("template", choices=("template", "local", "openai"), doc="captioner")
    model_path: str | None = param(None, doc="local: folder of a transformers vision-language model")
    endpoint: str | None = param(None, doc="openai: base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = param("default", doc="openai: model name sent to the endpoint")
    api_key_env: str | None = param(None, doc="openai: name of the environment variable with the API key")
    frames: int = param(4, lo=1, hi=32, doc="frames shown to a model captioner")
    frame_long_side: int = param(448, lo=64, doc="frames are shrunk to this long side for a model")
    timeout: float = param(60.0, lo=1.0, doc="openai: seconds per request")
    max_new_tokens: int = param(160, lo=8, doc="tokens a model may generate")

    def __post_init__(self) -> None:
        if self.backend == "local" and not self.model_path:
            raise ValueError("backend 'local' needs model_path")
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("backend 'openai' needs endpoint")


def parse_reply(text: str) -> tuple[str, str]:
    """(description, action) from a model reply: JSON (possibly in a code fence) or plain text."""
    m = re.search(r"\{.*\}", text, flags=re.S)
    if m:
        try:
            obj = json.loads(m.group(0))
            return str(obj.get("description", "")).strip(), str(obj.get("action", "")).strip()
        except json.JSONDecodeError:
            pass
    return text.strip(), ""


# -- template -----------------------------------------------------------------------------------

def template_action(ann: dict) -> str:
    """An action phrase from pose and motion annotations (deterministic, no model)."""
    yaw = [v for v in ann.get("yaw") or [] if v is not None]
    pitch = [v for v in ann.get("pitch") or [] if v is not None]
    motion = ann.get("motion_intensity")
    if len(yaw) >= 2 and max(yaw) - min(yaw) >= 25:
        direction = "right" if yaw[-1] > yaw[0] else "left"  # yaw > 0: nose to the image's right
        return f"turning head to the image {direction}"
    if len(pitch) >= 2 and max(pitch) - min(pitch) >= 12:
        return "nodding"
    if len(yaw) >= 2 and max(yaw) - min(yaw) >= 10:
        return "looking around"
    if motion is not None and motion < 0.5:
        return "holding still"
    return "talking and moving slightly"


def template_caption(clip: Clip, ann: dict) -> tuple[str, str]:
    given = clip.meta.get("action_phrase") or clip.meta.get("action") or ""
    action = str(given).strip() or template_action(ann)
    prompt = str(clip.meta.get("prompt") or "").strip()
    if prompt:
        return prompt, action
    ratio = ann.get("face_ratio")
    framing = "a close-up of" if ratio is not None and ratio > 0.15 else "a video of"
    yaw_mean = ann.get("yaw_mean")
    view = ""
    if yaw_mean is not None:
        view = " seen in profile" if abs(yaw_mean) > 50 else " seen from the front" if abs(yaw_mean) < 20 else ""
    return f"{framing} a person{view}, {action}.", action


# -- model backends -------------------------------------------------------------------------------

def _frames_for_model(clip: Clip, p: CaptionParams) -> list[np.ndarray]:
    return [resize_long_side(clip.frames[i], p.frame_long_side)[0] for i in even_indices(clip.num_frames, p.frames)]


def _jpeg_data_url(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


class OpenAICaptioner:
    """Chat-completions client for an OpenAI-compatible endpoint (standard library HTTP only)."""

    def __init__(self, p: CaptionParams):
        self.p = p
        self.url = p.endpoint.rstrip("/") + "/chat/completions"
        self.key = os.environ.get(p.api_key_env) if p.api_key_env else None
        if p.api_key_env and not self.key:
            raise InputError(f"caption: environment variable {p.api_key_env} (the API key) is not set")

    def __call__(self, clip: Clip, ann: dict) -> tuple[str, str]:
        import urllib.error
        import urllib.request  # allowed: only the captioning endpoint the user configured, never weights

        content = [{"type": "text", "text": INSTRUCTION}]
        content += [{"type": "image_url", "image_url": {"url": _jpeg_data_url(f)}} for f in _frames_for_model(clip, self.p)]
        body = json.dumps({"model": self.p.model, "max_tokens": self.p.max_new_tokens, "temperature": 0,
                           "messages": [{"role": "user", "content": content}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # allowed: user-configured endpoint
        try:
            with urllib.request.urlopen(req, timeout=self.p.timeout) as resp:  # allowed
                reply = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise InputError(f"caption endpoint {self.url}: {exc}") from None
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise InputError(f"caption endpoint {self.url}: unexpected reply {str(reply)[:120]}") from None
        return parse_reply(text if isinstance(text, str) else json.dumps(text))


class LocalCaptioner:
    """A transformers vision-language model (e.g. Qwen2-VL) loaded from a local folder."""

    def __init__(self, p: CaptionParams):
        self.p = p
        if not os.path.isdir(p.model_path or ""):
            raise ModelUnavailable(f"caption: model_path {p.model_path!r} is not a folder (weights are never downloaded)")
        import transformers

        cls = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
        self.processor = transformers.AutoProcessor.from_pretrained(p.model_path, local_files_only=True)
        self.model = cls.from_pretrained(p.model_path, local_files_only=True).eval()

    def __call__(self, clip: Clip, ann: dict) -> tuple[str, str]:
        import torch
        from PIL import Image

        images = [Image.fromarray(f) for f in _frames_for_model(clip, self.p)]
        messages = [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": INSTRUCTION}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], images=images, return_tensors="pt")
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.p.max_new_tokens, do_sample=False)
        text = self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        return parse_reply(text)


def captioner(p: CaptionParams, ctx: Context):
    if p.backend == "template":
        return template_caption
    key = ("captioner", p.backend, p.model_path, p.endpoint, p.model)
    return ctx.cached(key, lambda: OpenAICaptioner(p) if p.backend == "openai" else LocalCaptioner(p))


@stage("caption", "clip", CaptionParams,
       {"caption": pa.string(), "action_phrase": pa.string(), "captioner": pa.string()})
def caption(clip: Clip, ann: dict, p: CaptionParams, ctx: Context) -> dict:
    """An overall description and an action phrase (template, local model, or OpenAI-compatible API)."""
    description, action = captioner(p, ctx)(clip, ann)
    name = p.backend if p.backend == "template" else f"{p.backend}:{p.model if p.backend == 'openai' else p.model_path}"
    return {"caption": description, "action_phrase": action, "captioner": name}
