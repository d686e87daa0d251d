"""Contact sheet of synthetic training samples: blended backgrounds with the joints drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from handshape.data.synth.reader import SyntheticDataset
from handshape.handmodel.poses import GestureLibrary
from handshape.render.annotate import draw_skeleton
from handshape.render.contact_sheet import contact_sheet


def synthetic_sheet(
    folder: Path,
    out: Path,
    num: int = 32,
    backgrounds: Path | None = None,
    seed: int = 0,
    columns: int = 8,
) -> Path:
    """`num` random samples of `folder` (OUT/<split>) as the network sees them, with labels."""
    torch.manual_seed(seed)  # the training stream of backgrounds follows torch's seed
    dataset = SyntheticDataset(Path(folder), backgrounds, train=True, seed=seed)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(dataset), size=min(num, len(dataset)), replace=False)
    names = GestureLibrary.load().names
    tiles = []
    for index in sorted(int(i) for i in picks):
        item = dataset[index]
        image = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        drawn = draw_skeleton(image, item["joints_2d"].numpy(), item["visibility"].numpy())
        raw = dataset.shards.get(index)
        label = f"#{index} {names[int(raw['gesture'])]} L{int(raw['lighting'])}"
        tiles.append((label, [drawn]))
    title = (
        f"{len(tiles)} synthetic training samples ({folder}); hollow dots: hidden joints; "
        f"backgrounds: {dataset.backgrounds!r}"
    )
    return contact_sheet(tiles, Path(out), columns=columns, title=title)
