"""Known content for the frames to generate: the first-frame and region conditioning of the spatial–temporal
decoupled pipeline (seed 003 §3.2–3.3).

VACE's Video Condition Unit gives the generator frames F and masks M, `F = {I_first} + {0}×n`,
`M = {0} + {1}×n` (1 = generate). idvid keeps the same idea in latent space, with the mask flipped to say
what is *known*: `FrameCondition(latents, known)`, `known` 1 where the latents are given. The model reads
`[latents ⊙ known ; known]` as C + 1 more input channels (`backbone.frame_condition`, zero-initialised, so a
trained model is unchanged until it learns them), and the sampler pastes the known latents into its result.

Two uses, one mechanism:

* I2V — `first_frame_condition(z)`: latent frame 0 known (the causal VAE encodes frame 0 alone into it);
  the refiner's reference attention (`refiner.reference_dim`) then reads that first frame instead of the
  portrait, so the detail it moves into each frame comes from the same scene at a nearby pose.
* T2I with a background-removed reference — `region_condition(z_ref, head_region_mask(box))`: one latent
  frame whose head region is the reference's; the model paints clothing and background from the prompt
  around it. HRNet background removal in the paper; here the head region is an ellipse around the face box,
  the same function in training (ground-truth boxes) and generation (the detector's box), so no segmentation
  model is needed.

Latent masks are taken at latent resolution (a latent pixel is known or not), so training on cached latents
needs no extra VAE pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from idvid.errors import InputError

# The head around a face box (x0, y0, x1, y1): an ellipse centred HEAD_SHIFT box heights above the box's
# centre with semi-axes HEAD_AXES × (box width, box height) — measured on synthetic frames to take in the hair
# and ears and little of the shoulders, for ground-truth boxes and YuNet's (which start ~0.15 box heights higher).
HEAD_SHIFT = 0.12
HEAD_AXES = (0.66, 0.8)
# Training draws the head around the synthetic world's ground-truth face boxes, generation around YuNet's. On
# frame 0 of 40 validation clips (128 px) the ground-truth box's (x0, y0, x1, y1) lay at these offsets from
# YuNet's, in YuNet box widths / heights (std 0.03-0.06): YuNet's starts higher, at the forehead.
DETECTOR_TO_TRAINING_BOX = (-0.005, 0.122, -0.024, 0.029)


@dataclass
class FrameCondition:
    """Known latents (B, F, C, h, w) and where they are known (B, F, 1, h, w), 1 = known, 0 = generate;
    `reference` (B, C, h, w): what the refiner's reference attention reads instead of the portrait latent
    (the first frame in I2V: same light, clothes and scene as the frames to make, and a nearby pose)."""

    latents: torch.Tensor
    known: torch.Tensor
    reference: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, f, _, h, w = self.latents.shape
        if tuple(self.known.shape) != (b, f, 1, h, w):
            raise InputError(f"frame condition mask {tuple(self.known.shape)} does not match its latents {(b, f, 1, h, w)}")

    def channels(self, dtype: torch.dtype) -> torch.Tensor:
        """[latents ⊙ known ; known]: (B, F, C + 1, h, w), the model's extra input channels."""
        known = self.known.to(dtype)
        return torch.cat([self.latents.to(dtype) * known, known], dim=2)

    def paste(self, latents: torch.Tensor) -> torch.Tensor:
        """`latents` with the known ones put back."""
        known = self.known.to(latents.dtype)
        return latents * (1 - known) + self.latents.to(latents.dtype) * known


def first_frame_condition(latents: torch.Tensor, first: torch.Tensor | None = None) -> FrameCondition:
    """Latent frame 0 known — `first` (B, C, h, w), or `latents[:, 0]` — the rest generated; `latents`
    (B, F, C, h, w) gives the shape."""
    b, f, c, h, w = latents.shape
    first = latents[:, 0] if first is None else first
    if tuple(first.shape) != (b, c, h, w):
        raise InputError(f"first-frame latent {tuple(first.shape)} does not match the video's {(b, c, h, w)}")
    known = latents.new_zeros(b, f, 1, h, w)
    known[:, 0] = 1
    cond = latents.new_zeros(b, f, c, h, w)
    cond[:, 0] = first.to(latents.dtype)
    return FrameCondition(cond, known, reference=cond[:, 0])


def head_region_mask(boxes: torch.Tensor, frame_size: tuple[int, int], latent_size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) float mask, 1 on the latent pixels whose centre lies in the head ellipse of each face box
    (B, 4) given in pixels of frames of `frame_size` (H, W)."""
    (big_h, big_w), (h, w) = frame_size, latent_size
    boxes = boxes.float()
    ys = (torch.arange(h, dtype=torch.float32, device=boxes.device) + 0.5) * big_h / h
    xs = (torch.arange(w, dtype=torch.float32, device=boxes.device) + 0.5) * big_w / w
    x0, y0, x1, y1 = boxes.unbind(-1)
    bw, bh = (x1 - x0).clamp(min=1.0), (y1 - y0).clamp(min=1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - HEAD_SHIFT * bh
    ax, ay = HEAD_AXES[0] * bw, HEAD_AXES[1] * bh
    dy = (ys[None, :, None] - cy[:, None, None]) / ay[:, None, None]
    dx = (xs[None, None, :] - cx[:, None, None]) / ax[:, None, None]
    return (dx * dx + dy * dy <= 1.0).float()


def training_like_box(box) -> tuple[float, float, float, float]:
    """A detector's face box moved to where the training boxes put the face (DETECTOR_TO_TRAINING_BOX)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    dx0, dy0, dx1, dy1 = DETECTOR_TO_TRAINING_BOX
    return (x0 + dx0 * w, y0 + dy0 * h, x1 + dx1 * w, y1 + dy1 * h)


def region_condition(latent: torch.Tensor, mask: torch.Tensor) -> FrameCondition:
    """One latent frame whose `mask` (B, h, w) region is `latent` (B, C, h, w); the rest generated."""
    if latent.dim() != 4 or tuple(mask.shape) != (latent.shape[0], *latent.shape[2:]):
        raise InputError(f"region mask {tuple(mask.shape)} does not match the latent {tuple(latent.shape)}")
    known = mask[:, None, None].to(latent.dtype)
    return FrameCondition(latent[:, None] * known, known)


__all__ = ["FrameCondition", "first_frame_condition", "head_region_mask", "region_condition", "training_like_box",
           "DETECTOR_TO_TRAINING_BOX", "HEAD_AXES", "HEAD_SHIFT"]
