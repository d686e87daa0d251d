"""`handshape handmodel` (export, sheet, build, export-mano, info) and `handshape graph`: the
open hand model and its mesh graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the commands themselves, so that `--help` answers at once
    import trimesh

DEFAULT_MODEL_PATH = Path(__file__).parent.parent / "handmodel" / "assets" / "handmodel.npz"
MANO_HELP = "an official MANO_RIGHT.pkl (or a file in its layout) instead of handshape's model"


def _atomic_export(mesh: trimesh.Trimesh, out: Path) -> None:
    """Write a trimesh mesh to .obj/.ply via a temporary file in the same folder."""
    suffix = out.suffix.lower()
    if suffix not in (".obj", ".ply"):
        raise SystemExit(f"error: {out}: unsupported mesh format '{suffix}' (use .obj or .ply)")
    from handshape.safeio.atomic import atomic_write

    atomic_write(out, lambda tmp: mesh.export(tmp, file_type=suffix[1:]))


def cmd_handmodel_export(args: argparse.Namespace) -> None:
    import torch
    import trimesh

    from handshape.handmodel.model import HandModel
    from handshape.handmodel.poses import GestureLibrary

    model = HandModel.load(args.mano).double()
    library = GestureLibrary.load()
    try:
        pose = model.gesture(args.gesture, library)[None]
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from err
    shape = torch.zeros(1, model.num_shapes, dtype=torch.float64)
    if args.seed is not None:
        # A random hand doing a random variant of the gesture, as the synthetic data samples it.
        gen = torch.Generator().manual_seed(args.seed)
        shape = torch.randn(1, model.num_shapes, generator=gen, dtype=torch.float64)
        pose = model.limits.sample(1, generator=gen, spread=args.spread, around=pose)
    with torch.no_grad():
        out = model(shape=shape, pose=pose)
    mesh = trimesh.Trimesh(out.vertices[0].numpy(), model.faces.numpy(), process=False)
    _atomic_export(mesh, args.out)
    print(f"wrote {args.out}: gesture '{args.gesture}', {model.num_vertices} vertices")
    if args.joints:
        import json

        args.joints.write_text(json.dumps({"joints_m": out.joints[0].tolist()}, indent=1))
        print(f"wrote {args.joints}")


def cmd_handmodel_sheet(args: argparse.Namespace) -> None:
    from handshape.handmodel.model import HandModel
    from handshape.render.gesture_sheet import gesture_sheet

    out = gesture_sheet(args.out, model=HandModel.load(args.mano), size=args.size)
    print(f"wrote {out}")


def cmd_handmodel_build(args: argparse.Namespace) -> None:
    from handshape.handmodel import template_builder

    template_builder.main(["--out", str(args.out)])


def cmd_handmodel_export_mano(args: argparse.Namespace) -> None:
    from handshape.handmodel.mano_io import write_mano
    from handshape.handmodel.model import HandModel

    model = HandModel.load(args.mano)
    write_mano(model.data, args.out)
    print(f"wrote {args.out} (official MANO pickle layout)")


def cmd_handmodel_info(args: argparse.Namespace) -> None:
    from handshape.handmodel.model import HandModel
    from handshape.handmodel.poses import GestureLibrary

    model = HandModel.load(args.mano)
    d = model.data
    joints = model.rest_joints
    print(
        f"vertices: {d.num_vertices}   faces: {len(d.faces)}   shape coefficients: "
        f"{d.num_shapes} ({', '.join(d.shape_names) or 'unnamed'})"
    )
    length_mm = 1000 * float(((joints[12] - joints[0]) ** 2).sum() ** 0.5)
    print(f"hand length (wrist to middle tip): {length_mm:.1f} mm")
    print(f"gestures: {', '.join(GestureLibrary.load().names)}")


def cmd_graph(args: argparse.Namespace) -> None:
    from handshape.geometry.mesh_graph import mesh_hierarchy
    from handshape.handmodel.model import HandModel

    model = HandModel.load(args.mano)
    hierarchy = mesh_hierarchy(model.data.faces, model.num_vertices, levels=args.levels)
    print(hierarchy.describe())


def add_handmodel(sub: argparse._SubParsersAction) -> None:
    """`handshape handmodel` and its actions."""
    hm = sub.add_parser(
        "handmodel",
        help="the open parametric hand model",
        description="Build, inspect, export and render the hand model.",
    )
    hm_sub = hm.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = hm_sub.add_parser("export", help="write one posed hand as .obj or .ply")
    p.add_argument("--gesture", required=True, help="a gesture name (see `handmodel info`)")
    p.add_argument("--seed", type=int, help="random shape and a perturbed gesture from this seed")
    p.add_argument(
        "--spread",
        type=float,
        default=0.1,
        help="perturbation, as a fraction of each joint's range (with --seed)",
    )
    p.add_argument("--out", type=Path, required=True, help="FILE.obj or FILE.ply")
    p.add_argument("--joints", type=Path, help="also write the 21 joints as JSON here")
    p.add_argument("--mano", type=Path, help=MANO_HELP)
    p.set_defaults(func=cmd_handmodel_export)

    p = hm_sub.add_parser("sheet", help="render every gesture from two viewpoints into one PNG")
    p.add_argument("--out", type=Path, default=Path("docs/handmodel.png"))
    p.add_argument("--size", type=int, default=200, help="pixels per view")
    p.add_argument("--mano", type=Path, help=MANO_HELP)
    p.set_defaults(func=cmd_handmodel_sheet)

    p = hm_sub.add_parser("build", help="regenerate the model asset from assets/design.yaml")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    p.set_defaults(func=cmd_handmodel_build)

    p = hm_sub.add_parser("export-mano", help="write the model in the official MANO pickle layout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mano", type=Path, help=MANO_HELP)
    p.set_defaults(func=cmd_handmodel_export_mano)

    p = hm_sub.add_parser("info", help="sizes, shape coefficients and gesture names")
    p.add_argument("--mano", type=Path, help=MANO_HELP)
    p.set_defaults(func=cmd_handmodel_info)


def add_graph(sub: argparse._SubParsersAction) -> None:
    """`handshape graph`."""
    p = sub.add_parser("graph", help="the mesh graph's Graclus coarsening levels")
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--mano", type=Path, help=MANO_HELP)
    p.set_defaults(func=cmd_graph)
