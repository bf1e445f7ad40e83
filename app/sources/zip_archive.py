"""Samples from an uploaded `.zip` of PNGs: sample i is the archive's i-th member.

The archive is untrusted: the central directory's extent and entry count are checked from its end
records before zipfile reads it (read whole, it costs an object per entry), member names, counts,
declared sizes and compression ratios before anything is decompressed, and every PNG's size from its
header before its pixels are decoded (a 139 KB PNG can decode to 7000x7000). Members are read one
at a time through a byte counter (never `extractall`), and Pillow's decompression-bomb limit stays on.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from app.gan.zip_directory import check_zip_directory
from app.sources.base import SampleChunk, check_indices, check_sides

MAX_MEMBERS = 1_000_000
MAX_MEMBER_BYTES = 16 * 1024 * 1024  # declared uncompressed size of one PNG
# Declared uncompressed size of the whole archive (PNGs of a 10^6-sample pool at 128x128 fit);
# members are read one at a time, so it bounds work, not memory.
MAX_TOTAL_BYTES = 64 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed; PNG is already compressed, so a high ratio is a bomb
READ_BLOCK = 1 << 16
# Pixels decoded to check an archive whole: 10^6 images of 128x128 (as MAX_TOTAL_BYTES), worked
# out from the first image's header and the member count before any image is decoded.
MAX_TOTAL_PIXELS = 2**34


@dataclass(frozen=True)
class ZipLayout:
    members: tuple[str, ...]
    image_shape: tuple[int, int, int]


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or name.startswith("/"):
        raise ValueError(f"unsafe member name {name!r} in the archive")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read one member through a counter, refusing it once it exceeds its declared size."""
    buffer = io.BytesIO()
    try:
        with archive.open(info) as stream:
            while block := stream.read(READ_BLOCK):
                if buffer.tell() + len(block) > min(info.file_size, MAX_MEMBER_BYTES):
                    raise ValueError(f"member {info.filename!r} is larger than it declares")
                buffer.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise ValueError(f"member {info.filename!r} cannot be read: {exc}") from exc
    return buffer.getvalue()


def _decode(
    data: bytes, name: str, expected: tuple[int, int, int] | None = None
) -> tuple[Image.Image, tuple[int, int, int]]:
    """The decoded image and its (C, H, W), refused from its header alone when a side is outside
    MIN_SIDE..MAX_SIDE (app.sources.base) or it differs from `expected`."""
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise ValueError(f"member {name!r} is not a readable PNG: {exc}") from exc
    shape = (_channels(image), image.height, image.width)
    check_sides(shape[1], shape[2], f"images ({name!r})")
    if expected is not None and shape != expected:
        raise ValueError(f"mixed image sizes: {name!r} is {shape}, the first image is {expected}")
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise ValueError(f"member {name!r} is not a readable PNG: {exc}") from exc
    return image, shape


def _channels(image: Image.Image) -> int:
    return 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3


def open_zip(path: Path) -> zipfile.ZipFile:
    """The archive, once its central directory is known to hold at most MAX_MEMBERS entries."""
    try:
        check_zip_directory(path, MAX_MEMBERS)
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable .zip archive: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"not an acceptable .zip archive: {exc}") from exc


def inspect_zip(path: Path, verify_all: bool = True) -> ZipLayout:
    """Check the archive whole; raises ValueError naming the first problem found."""
    with open_zip(path) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if not infos:
            raise ValueError("the archive holds no images")
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"the archive has {len(infos)} members; the limit is {MAX_MEMBERS}")
        total = 0
        for info in infos:
            _check_name(info.filename)
            if not info.filename.lower().endswith(".png"):
                raise ValueError(f"member {info.filename!r} is not a .png image")
            if info.file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"member {info.filename!r} declares {info.file_size} bytes")
            if info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise ValueError(f"member {info.filename!r} has a suspicious compression ratio")
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ValueError(f"the archive declares {total} bytes uncompressed; too large")
        first = infos[0]
        _, shape = _decode(_read_member(archive, first), first.filename)
        pixels = len(infos) * shape[1] * shape[2]
        if pixels > MAX_TOTAL_PIXELS:
            raise ValueError(
                f"{len(infos):,} images of {shape[1]}x{shape[2]} are {pixels:,} pixels to check, "
                f"more than the {MAX_TOTAL_PIXELS:,} accepted: upload an .npz, or fewer images"
            )
        for info in infos[1:] if verify_all else ():
            _decode(_read_member(archive, info), info.filename, shape)
        return ZipLayout(tuple(info.filename for info in infos), shape)


class ZipSource:
    max_samples: int | None

    def __init__(self, path: Path) -> None:
        self.path = path
        layout = inspect_zip(path, verify_all=False)
        self.members = layout.members
        self.image_shape = layout.image_shape
        self.max_samples = len(self.members)
        # Opened once: opening reads the whole central directory (~1 s at 10^6 members), which a
        # server drawing one sample per request would otherwise pay per image.
        self._archive: zipfile.ZipFile | None = None

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        c, h, w = self.image_shape
        images = torch.empty((len(indices), c, h, w), dtype=torch.float32)
        if self._archive is None:
            self._archive = open_zip(self.path)
        archive = self._archive
        for row, index in enumerate(indices.tolist()):
            info = archive.getinfo(self.members[index])
            image, _ = _decode(_read_member(archive, info), info.filename, self.image_shape)
            image = image.convert("L" if c == 1 else "RGB")
            array = np.asarray(image, dtype=np.float32).reshape(h, w, c)
            images[row] = torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1
        return SampleChunk(images=images, identities=None)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
