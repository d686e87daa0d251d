"""MediaPipe Hands' two networks, taken out of the mediapipe wheel once, at set-up.

The palm detector (``palm_detection_full.tflite``) and the hand landmark network
(``hand_landmark_full.tflite``, Apache-2.0, Google) ship inside the mediapipe 0.10.21 wheel for
CPython 3.11 on x86_64 Linux; later wheels no longer carry them. That wheel needs numpy < 2, so
it is never installed: `install` downloads it with pip (``--no-deps``, any Python can do so),
checks its sha256, and extracts the two files and the package's licence into the cache

    $HANDSHAPE_CACHE/mediapipe-0.10.21/      (default: $XDG_CACHE_HOME/handshape, else
                                              ~/.cache/handshape)

with a SOURCE.json naming the wheel, its sha256 and each file's. Nothing is fetched at run time:
`model_file` finds a file there or raises `MissingModelFiles` naming the command that fills the
cache (``handshape setup``; ``make test`` and ``make pretrain`` run it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.10.21"
WHEEL = f"mediapipe-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
# name -> path inside the wheel
FILES = {
    "palm_detection": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmark": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
LICENSE = f"mediapipe-{VERSION}.dist-info/LICENSE"
SETUP_COMMAND = "handshape setup"


class MissingModelFiles(FileNotFoundError):
    """The cache lacks a network file; the message names the command that fills it."""


def cache_root() -> Path:
    """$HANDSHAPE_CACHE, else $XDG_CACHE_HOME/handshape, else ~/.cache/handshape."""
    explicit = os.environ.get("HANDSHAPE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "handshape"


def cache_dir(root: Path | None = None) -> Path:
    """The folder holding this version's files."""
    return (root or cache_root()) / f"mediapipe-{VERSION}"


def model_file(name: str, root: Path | None = None) -> Path:
    """The extracted network `name` (a key of FILES); MissingModelFiles if not set up."""
    if name not in FILES:
        raise ValueError(f"unknown MediaPipe network '{name}' (one of {', '.join(FILES)})")
    path = cache_dir(root) / Path(FILES[name]).name
    if not path.is_file() or not (cache_dir(root) / "SOURCE.json").is_file():
        raise MissingModelFiles(
            f"{path}: MediaPipe's {name} network is not set up; run `{SETUP_COMMAND}` once (it "
            f"takes the file out of the mediapipe {VERSION} wheel from PyPI), or set "
            "HANDSHAPE_CACHE to a folder where it was run"
        )
    return path


def is_installed(root: Path | None = None) -> bool:
    try:
        for name in FILES:
            model_file(name, root)
    except MissingModelFiles:
        return False
    return True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(folder: Path) -> Path:
    """pip-download the pinned wheel (no dependencies, whatever this Python is) into folder."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_28_x86_64",
        f"mediapipe=={VERSION}",
        "-d",
        str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = folder / WHEEL
    if result.returncode != 0 or not wheel.is_file():
        raise RuntimeError(
            f"could not download {WHEEL} from the package index (pip said: "
            f"{(result.stderr or result.stdout).strip()[-500:]})"
        )
    return wheel


def install(
    root: Path | None = None, wheel: Path | None = None, expected_sha256: str = WHEEL_SHA256
) -> Path:
    """Fill the cache from `wheel` (default: downloaded) and return the cache folder.

    The wheel's sha256 must be `expected_sha256`. The folder appears complete or not at all
    (extracted under a temporary name, then renamed); an installed cache is left as it is."""
    target = cache_dir(root)
    if is_installed(root):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mediapipe-", dir=target.parent) as tmp:
        work = Path(tmp)
        if wheel is None:
            wheel = download_wheel(work)
        wheel = Path(wheel)
        found = sha256(wheel)
        if found != expected_sha256:
            raise ValueError(
                f"{wheel}: sha256 {found} is not the pinned {expected_sha256} of {WHEEL}"
            )
        staged = work / "files"
        staged.mkdir()
        files: dict[str, dict[str, str]] = {}
        try:
            with zipfile.ZipFile(wheel) as archive:
                for inner in [*FILES.values(), LICENSE]:
                    out = staged / Path(inner).name
                    with archive.open(inner) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    files[out.name] = {"from": inner, "sha256": sha256(out)}
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"{wheel}: not the mediapipe wheel expected ({err})") from err
        record = {"wheel": WHEEL, "wheel_sha256": found, "files": files}
        (staged / "SOURCE.json").write_text(json.dumps(record, indent=1) + "\n")
        if target.exists():  # a partial folder from before: replaced whole
            shutil.rmtree(target)
        os.replace(staged, target)
    return target
