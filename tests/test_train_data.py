"""Training data: split guards, image-video joint items, batch contents, reference and latent caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from idvid.errors import InputError
from idvid.train.config import DataConfig
from idvid.train.dataset import (
    ClipItem,
    IdentityVideoDataset,
    LatentStore,
    ReferenceStore,
    build_dataset,
    check_split_seeds,
    collate,
    folder_items,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """2 training identities x 1 clip of 5 frames at 64 px; half the items are still images."""
    run_dir = tmp_path_factory.mktemp("run")
    data = DataConfig(seed_start=10, num_identities=2, clips_per_identity=1, frames=5, size=64, image_ratio=0.5,
                      flow_maps=True)
    return build_dataset(data, run_dir, progress=False), data, run_dir


def _find(ds, image: bool, moving: bool | None = None):
    for epoch in range(50):
        for index in range(len(ds)):
            if ds.is_image(epoch, index) == image:
                if moving is None or (ds.clip_data(ds.item_at(epoch, index), pixels=False)["intensity"] > 0) == moving:
                    return epoch, index
    raise AssertionError("no such item")


def test_training_refuses_validation_and_heldout_identities(tmp_path):
    check_split_seeds([0, 999_999], "train")
    for seed in (1_000_000, 1_500_000, 2_000_000):
        with pytest.raises(InputError, match=f"refusing identity seed {seed}"):
            check_split_seeds([3, seed], "train")
    with pytest.raises(InputError, match="validation identities must have seeds"):
        check_split_seeds([999_999], "validation")
    store = ReferenceStore(tmp_path, 64)
    with pytest.raises(InputError, match="never used for training"):
        IdentityVideoDataset([ClipItem(5, 0), ClipItem(2_000_001, 0)], DataConfig(), store, "train")
    with pytest.raises(InputError, match="beyond the training range"):
        DataConfig(seed_start=999_990, num_identities=20)

    # a pre-rendered folder of validation identities is refused as training data
    from idvid.synth import clip_spec, manifest_row, render_clip, write_manifest

    rows = [manifest_row(render_clip(clip_spec(1_000_003, 0), 64, 5, pixels=False), "clips/x.mp4", "refs/x.png")]
    write_manifest(tmp_path / "manifest.parquet", rows)
    with pytest.raises(InputError, match="refusing identity seed 1000003"):
        folder_items(tmp_path)


def test_image_items_are_still_zero_intensity_clips(small):
    ds, data, _ = small
    image = ds[_find(ds, image=True)]
    frames = image["frames"]
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == torch.uint8
    assert torch.equal(frames, frames[:1].expand_as(frames))
    assert torch.equal(image["face_mask"], image["face_mask"][:1].expand_as(image["face_mask"]))
    assert torch.equal(image["face_boxes"], image["face_boxes"][:1].expand_as(image["face_boxes"]))
    assert image["motion_intensity"].item() == 0.0 and image["is_image"].item()
    assert image["action_phrase"] == "looks at the camera" and "looks at the camera" in image["prompt"]
    assert image["flow_fg"].abs().max() == 0

    video = ds[_find(ds, image=False, moving=True)]
    assert not video["is_image"].item() and video["motion_intensity"].item() > 0
    assert not torch.equal(video["frames"], video["frames"][:1].expand_as(video["frames"]))

    # a batch mixes both; everything the losses need is there, with the documented shapes
    batch = collate([image, video])
    assert batch["is_image"].tolist() == [True, False]
    assert batch["motion_intensity"][0] == 0 and batch["motion_intensity"][1] > 0
    shapes = {k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    assert shapes["face_mask"] == (2, 5, 64, 64) and batch["face_mask"].dtype == torch.bool
    assert shapes["face_boxes"] == (2, 5, 4) and shapes["flow_fg"] == (2, 5, 64, 64)
    assert shapes["reference"] == (2, 64, 64, 3) and shapes["face_crop"] == (2, 112, 112, 3)
    torch.testing.assert_close(batch["face_embedding"].norm(dim=1), torch.ones(2))  # SFace found both faces
    assert all(isinstance(p, str) and p for p in batch["prompt"])
    assert batch["face_mask"][1].float().mean() > 0.02  # the face covers part of every frame


def test_items_are_a_pure_function_of_epoch_and_index(small):
    ds, _, _ = small
    keys = [(e, i) for e in range(200) for i in range(len(ds))]
    flags = [ds.is_image(*k) for k in keys]
    assert flags == [ds.is_image(*k) for k in keys]
    assert 0.4 < np.mean(flags) < 0.6  # image_ratio 0.5, drawn per (epoch, index)
    # a DataLoader worker renders exactly what the main process renders
    key = _find(ds, image=False)
    loader = DataLoader(ds, batch_sampler=[[key]], collate_fn=collate, num_workers=1)
    (from_worker,) = list(loader)
    here = collate([ds[key]])
    for k, v in here.items():
        assert torch.equal(v, from_worker[k]) if isinstance(v, torch.Tensor) else v == from_worker[k]


def test_reference_features_are_cached_once(small):
    ds, data, _ = small
    store = ds.references
    assert store.ensure([10, 11], lambda s: pytest.fail("recomputed a cached reference")) == 0
    assert sorted(store.index()) == [10, 11]
    assert all(p.suffix == ".safetensors" for p in store.index().values())


def test_cached_latents_match_encoding_the_rendered_clip(small):
    from diffusers import AutoencoderKLCogVideoX

    from idvid.models import tiny_vae_config

    ds, data, run_dir = small
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX.from_config(tiny_vae_config()).eval()

    @torch.no_grad()
    def encode(frames):  # (B, T, 3, H, W) in [-1, 1] -> (B, F', C, h, w)
        z = vae.encode(frames.permute(0, 2, 1, 3, 4)).latent_dist.mode() * vae.config.scaling_factor
        return z.permute(0, 2, 1, 3, 4)

    store = LatentStore(run_dir / "latents")
    assert store.ensure(ds, encode, progress=False) == 2
    assert store.ensure(ds, encode, progress=False) == 0
    key = _find(ds, image=False)
    pixels = ds[key]
    ds.latents = store
    try:
        cached = ds[key]
        image = ds[_find(ds, image=True)]
    finally:
        ds.latents = None
    assert "frames" not in cached
    want = encode(pixels["frames"][None].permute(0, 1, 4, 2, 3).float() / 127.5 - 1)[0]
    assert cached["latents"].shape == (2, 4, 8, 8)
    torch.testing.assert_close(cached["latents"], want, rtol=1e-5, atol=1e-5)
    assert cached["latent_mask"].shape == (2, 1, 8, 8) and 0 < cached["latent_mask"].float().mean() < 1
    assert cached["latent_region"].shape == (2, 1, 8, 8) and cached["latent_region"].min() >= 1
    assert cached["reference_latent"].shape == (4, 8, 8)
    assert image["motion_intensity"] == 0 and image["latents"].shape == (2, 4, 8, 8)


def test_prerendered_folder_source(tmp_path):
    from click.testing import CliRunner

    from idvid.synth.cli import synth

    out = tmp_path / "world"
    res = CliRunner().invoke(synth, ["--out", str(out), "-n", "1", "-k", "1", "--seed", "20", "--frames", "5",
                                     "--size", "64", "--workers", "1", "--save-masks", "--quiet"])
    assert res.exit_code == 0, res.output
    data = DataConfig(source="folder", path=str(out), frames=5, size=64)
    ds = build_dataset(data, tmp_path / "run", progress=False)
    assert len(ds) == 1
    item = ds[(0, 0)]
    assert item["frames"].shape == (5, 64, 64, 3) and item["identity_seed"].item() == 20
    assert item["face_mask"].any() and item["prompt"] == ds.items[0].row["prompt"]


def test_new_clips_each_epoch_streams_new_clips_of_the_same_people(tmp_path):
    store = ReferenceStore(tmp_path, 64)
    data = DataConfig(seed_start=0, num_identities=2, clips_per_identity=3, new_clips_each_epoch=True, epoch_size=12)
    ds = IdentityVideoDataset([ClipItem(s, k) for s in (0, 1) for k in range(3)], data, store)
    seen = [(ds.item_at(e, i).identity_seed, ds.item_at(e, i).clip_index) for e in range(3) for i in range(12)]
    assert len(set(seen)) == len(seen)  # never the same clip twice
    assert {s for s, _ in seen} == {0, 1}


def test_intensity_resampling_flattens_the_histogram_deterministically(tmp_path):
    from idvid.synth import clip_spec, render_clip
    from idvid.train.dataset import flat_intensity_items, synth_items

    def intensities(items):
        return np.array([render_clip(clip_spec(it.identity_seed, it.clip_index), size=64, num_frames=9, fps=8.0,
                                     pixels=False).motion_intensity for it in items])

    plain = intensities(synth_items(0, 60, 1))
    items = flat_intensity_items(0, 60, 1, 4, 9, seed=0, cache=tmp_path, progress=False)
    assert [it.identity_seed for it in items] == list(range(60))  # one clip per identity, still
    flat = intensities(items)
    # fast motion is rare in the world (most clips move gently); resampling picks it several times as often
    assert np.mean(flat >= 4) > 1.5 * np.mean(plain >= 4)
    assert flat_intensity_items(0, 60, 1, 4, 9, seed=0, cache=tmp_path, progress=False) == items  # cached
    assert flat_intensity_items(0, 60, 1, 4, 9, seed=0, cache=None, progress=False) == items  # recomputed
