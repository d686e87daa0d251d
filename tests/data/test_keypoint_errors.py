"""The simulated landmark errors: each kind does what it says, and nothing without errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from handshape.data.keypoint_errors import KeypointErrors, simulate, weak_perspective_depth

K = torch.tensor([[500.0, 0, 0], [0, 500.0, 0], [0, 0, 1]]).expand(64, 3, 3)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    joints = torch.randn(64, 21, 3, generator=gen) * 0.03 + torch.tensor([0.0, 0.0, 0.5])
    return joints[..., :2] / joints[..., 2:] * 500, joints


def test_without_errors_the_truth_comes_back() -> None:
    keypoints, joints = batch()
    out, confidence, depth = simulate(
        keypoints, joints, K, KeypointErrors.none(), torch.Generator()
    )
    assert torch.allclose(out, keypoints, atol=1e-6)
    assert torch.equal(confidence, torch.ones_like(confidence))
    assert torch.allclose(depth, weak_perspective_depth(joints, K), atol=1e-5)


def test_jitter_scales_with_the_hand_and_fingertips_move_more() -> None:
    keypoints, joints = batch()
    errors = dataclasses.replace(KeypointErrors.none(), jitter=(0.05, 0.05), tip_factor=2.0)
    out, _, _ = simulate(keypoints, joints, K, errors, torch.Generator().manual_seed(1))
    side = (keypoints.amax(1) - keypoints.amin(1)).amax(1)[:, None]
    error = (out - keypoints).norm(dim=-1) / side
    tips = error[:, [4, 8, 12, 16, 20]].mean()
    others = error[:, [0, 1, 5, 9, 13, 17]].mean()
    assert float(others) == pytest.approx(0.05 * (torch.pi / 2) ** 0.5, rel=0.15)
    assert float(tips / others) == pytest.approx(2.0, rel=0.2)


def test_a_swap_trades_two_neighbouring_fingers() -> None:
    keypoints, joints = batch()
    errors = dataclasses.replace(KeypointErrors.none(), swap=1.0)
    out, confidence, _ = simulate(keypoints, joints, K, errors, torch.Generator().manual_seed(2))
    fingers = [list(range(1 + 4 * f, 5 + 4 * f)) for f in range(5)]
    for k in range(8):
        moved = [
            f for f in range(5) if not torch.allclose(out[k, fingers[f]], keypoints[k, fingers[f]])
        ]
        assert len(moved) == 2 and moved[1] == moved[0] + 1 and moved[0] >= 1
        a, b = moved
        assert torch.allclose(out[k, fingers[a]], keypoints[k, fingers[b]], atol=1e-5)
        assert bool((confidence[k, fingers[a]] < 1).all())


def test_depths_can_be_missing_and_are_relative_to_the_wrist() -> None:
    keypoints, joints = batch()
    errors = dataclasses.replace(KeypointErrors.none(), no_depth=0.5, depth_noise=0.1)
    _, _, depth = simulate(keypoints, joints, K, errors, torch.Generator().manual_seed(3))
    absent = (depth == 0).all(1)
    assert 10 < int(absent.sum()) < 54
    assert torch.equal(depth[:, 0], torch.zeros(64))


def test_one_generator_state_gives_one_result() -> None:
    keypoints, joints = batch()
    errors = KeypointErrors.from_dict(
        {
            "jitter": [0.01, 0.06],
            "tip_factor": 1.5,
            "shift": 0.05,
            "scale": 0.08,
            "rotate": 8,
            "swap": 0.1,
            "drop": 0.1,
            "confidence": [0.5, 1],
            "depth_scale": [0.5, 1],
            "depth_noise": 0.1,
            "no_depth": 0.1,
        },
        "test",
    )
    one = simulate(keypoints, joints, K, errors, torch.Generator().manual_seed(4))
    two = simulate(keypoints, joints, K, errors, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_settings_out_of_range_are_refused_by_name() -> None:
    good = dataclasses.asdict(KeypointErrors.none())
    with pytest.raises(ValueError, match=r"errors\.swap is a probability"):
        KeypointErrors.from_dict({**good, "swap": 2.0}, "errors")
    with pytest.raises(ValueError, match="expected the settings"):
        KeypointErrors.from_dict({**good, "jiter": 1.0}, "errors")
