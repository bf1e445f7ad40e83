"""Samples from an uploaded `.npz` archive: sample i is the i-th image of its one array.

The archive is untrusted. Its central directory's extent is checked from its end records before
zipfile reads it (an .npz holds one member; a directory of millions costs GBs to read). Its array
header is read and checked (dtype, shape, declared size against the zip member's) before any image
data is decompressed, so a small file that claims a huge array or inflates a thousandfold is
refused at upload instead of allocating memory. Images are then read a
chunk at a time: memory-mapped from a stored (`np.savez`) member, streamed with a byte counter from a
deflated (`np.savez_compressed`) one. `allow_pickle` never comes into it: object dtypes are refused.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from numpy.typing import NDArray

from app.gan.zip_directory import check_zip_directory, zip_entry_names
from app.sources.base import MAX_SIDE, MIN_SIDE, SampleChunk, check_indices
from app.sources.zip_archive import MAX_MEMBERS

MAX_IMAGES = 10_000_000
MAX_ENTRIES = 16  # zip entries of an .npz: its one array, and any folder entries around it
# Declared uncompressed size of the array: a pool of 10^6 float32 64x64 RGB images (49 GB) fits.
# It bounds the work of reading it, never memory: the array is read a chunk at a time.
MAX_ARRAY_BYTES = 64 * 1024**3
# Uncompressed / compressed for np.savez_compressed. Images of a real generator deflate a few times
# over; a pool collapsed onto identical images can deflate near zlib's limit (~1000), and such a pool
# uploads as np.savez, which stores the array as is.
MAX_RATIO = 100
READ_BLOCK = 1 << 20
RANGE_SLACK = 1e-4  # float rounding past +-1, as the generator probe allows
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then name and extra-field lengths
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


@dataclass(frozen=True)
class NpzLayout:
    member: str
    dtype: np.dtype[np.generic]
    shape: tuple[int, int, int, int]
    data_offset: int  # where the array's bytes start inside the member
    stored: bool  # not compressed: the array can be memory-mapped from the file

    @property
    def count(self) -> int:
        return self.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) whatever the array's layout."""
        if self.dtype.kind == "u":
            _, h, w, c = self.shape  # NHWC
        else:
            _, c, h, w = self.shape  # NCHW in [-1, 1]
        return c, h, w

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


def _open(path: Path) -> zipfile.ZipFile:
    try:
        check_zip_directory(path, MAX_ENTRIES)
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"not a readable .npz archive: {exc}") from exc


def _member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) != 1:
        raise ValueError(f"the .npz must hold exactly one array, found {len(infos)}")
    (info,) = infos
    if not info.filename.endswith(".npy"):
        raise ValueError(f"member {info.filename!r} is not a .npy array")
    if info.flag_bits & 0x1:
        raise ValueError("encrypted archives are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError("the .npz must be written by np.savez or np.savez_compressed")
    return info


def _read_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[np.generic]]:
    """(shape, Fortran order, dtype), as numpy's readers give them."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"unsupported .npy format version {version}")


def _check_array(dtype: np.dtype[np.generic], shape: tuple[int, ...], fortran: bool) -> None:
    uint8 = dtype.kind == "u" and dtype.itemsize == 1
    floats = dtype.kind == "f" and dtype.itemsize in (2, 4, 8)
    if dtype.hasobject or not (uint8 or floats):
        raise ValueError(f"expected uint8 NHWC or float NCHW images, got dtype {dtype}")
    if len(shape) != 4:
        raise ValueError(f"expected a 4-d image array, got shape {shape}")
    if fortran:
        raise ValueError("the array is in Fortran order: save np.ascontiguousarray(images)")


def inspect_npz(path: Path) -> NpzLayout:
    """Check the archive from its headers alone; raises ValueError naming the first problem."""
    with _open(path) as archive:
        info = _member(archive)
        try:
            with archive.open(info) as stream:
                shape, fortran, dtype = _read_header(stream)
                data_offset = stream.tell()
        except (*_ZIP_ERRORS, ValueError, SyntaxError) as exc:
            raise ValueError(f"the array's header cannot be read: {exc}") from exc
    _check_array(dtype, shape, fortran)
    n, a, b, c = (int(size) for size in shape)
    layout = NpzLayout(info.filename, dtype, (n, a, b, c), data_offset, not info.compress_type)
    channels, height, width = layout.image_shape
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {channels}")
    if not (1 <= n <= MAX_IMAGES) or not (
        MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE
    ):
        raise ValueError(f"unsupported archive shape {tuple(shape)}")
    declared = n * layout.row_bytes
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(f"the array declares {declared} bytes; the limit is {MAX_ARRAY_BYTES}")
    if info.file_size != data_offset + declared:
        raise ValueError(
            f"the array's header declares {declared} bytes but its member holds "
            f"{info.file_size - data_offset}"
        )
    if not layout.stored and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        raise ValueError(
            f"the array deflates {ratio:.0f}:1 (the limit is {MAX_RATIO}:1, against compression "
            "bombs); a pool of near-identical images can: save it with np.savez, uncompressed"
        )
    return layout


def verify_npz(path: Path, layout: NpzLayout) -> None:
    """Read every byte once through a counter (checksum included), a block at a time."""
    with _open(path) as archive:
        try:
            with archive.open(layout.member) as stream:
                stream.read(layout.data_offset)
                left = layout.count * layout.row_bytes
                rows_per_block = max(1, READ_BLOCK // layout.row_bytes)
                low, high = math.inf, -math.inf
                while left:
                    block = stream.read(min(left, rows_per_block * layout.row_bytes))
                    if not block:
                        raise ValueError("the array ends before its declared size")
                    left -= len(block)
                    if layout.dtype.kind == "f" and len(block) % layout.dtype.itemsize == 0:
                        values = np.frombuffer(block, layout.dtype)
                        if not np.isfinite(values).all():
                            raise ValueError("the archive holds NaN or infinite values")
                        if values.size:
                            low = min(low, float(values.min()))
                            high = max(high, float(values.max()))
                if stream.read(1):
                    raise ValueError("the array is longer than it declares")
        except _ZIP_ERRORS as exc:
            raise ValueError(f"the array cannot be read: {exc}") from exc
    check_float_range(low, high)


def check_float_range(low: float, high: float) -> None:
    """Float images are NCHW in [-1, 1]: anything else would be clipped into it when drawn, and
    [0, 255] or [0, 1] pixels clipped to 1 or squeezed to a corner look like one collapsed mode."""
    if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
        hint = (
            "pixels in [0, 255]? save them as uint8 NHWC, or map them with x / 127.5 - 1"
            if low >= 0 and high > 2
            else "map them into [-1, 1]"
        )
        raise ValueError(
            f"float images must lie in [-1, 1], got values from {low:.3g} to {high:.3g} ({hint})"
        )


def sample_archive_kind(path: Path) -> str:
    """'npz' or 'zip' (of PNGs): both are zip files, told apart by their members' names, read
    from the central directory without zipfile (the archive is opened once, to inspect it)."""
    files = 0
    arrays = True
    try:
        for name in zip_entry_names(path, MAX_MEMBERS):
            if not name.endswith(b"/"):
                files += 1
                arrays = arrays and name.endswith(b".npy")
    except (ValueError, OSError) as exc:
        raise ValueError(f"a sample archive must be a .npz or a .zip of PNGs: {exc}") from exc
    return "npz" if files and arrays else "zip"


def describe_npz(path: Path) -> tuple[int, tuple[int, int, int]]:
    """(image count, (C, H, W)) of an archive checked whole; raises ValueError on anything else."""
    layout = inspect_npz(path)
    verify_npz(path, layout)
    return layout.count, layout.image_shape


def _stored_offset(path: Path, archive: zipfile.ZipFile, member: str) -> int:
    """File offset of a stored member's first byte (its local header may differ from the central)."""
    info = archive.getinfo(member)
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise ValueError("the archive's local header is damaged")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _chunks(stream: IO[bytes], size: int) -> list[bytes]:
    """`size` bytes or fewer at the end of the stream, whatever each read returns."""
    parts: list[bytes] = []
    while size > 0 and (part := stream.read(size)):
        parts.append(part)
        size -= len(part)
    return parts


class NpzSource:
    max_samples: int | None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.layout = inspect_npz(path)
        self.max_samples = self.layout.count
        self.image_shape = self.layout.image_shape
        self._mapped: np.memmap[tuple[int, ...], np.dtype[np.generic]] | None = None
        self._archive: zipfile.ZipFile | None = None
        self._stream: IO[bytes] | None = None
        self._position = 0  # byte offset of the deflated stream, past the array header
        if self.layout.stored:
            with _open(path) as archive:
                offset = _stored_offset(path, archive, self.layout.member)
            self._mapped = np.memmap(
                path,
                dtype=self.layout.dtype,
                mode="r",
                offset=offset + self.layout.data_offset,
                shape=self.layout.shape,
            )

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        rows = self._rows(indices)
        if rows.dtype.kind == "u":
            images = torch.from_numpy(rows.astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
        else:
            images = torch.from_numpy(rows.astype(np.float32, copy=False))
            if not torch.isfinite(images).all():
                raise ValueError("the archive holds NaN or infinite values")
            images = images.clamp_(-1, 1)
        return SampleChunk(images=images.contiguous(), identities=None)

    def _rows(self, indices: NDArray[np.int64]) -> NDArray[np.generic]:
        if self._mapped is not None:
            return np.asarray(self._mapped[indices])
        wanted, where = np.unique(indices, return_inverse=True)  # sorted: the stream reads forward
        rows = np.empty((len(wanted), *self.layout.shape[1:]), dtype=self.layout.dtype)
        for row, index in enumerate(wanted.tolist()):
            rows[row] = self._read_row(int(index))
        if len(wanted) == len(indices) and (wanted == indices).all():
            return rows  # already in order, each once: the usual chunk of an audit
        return rows[where.reshape(-1)]

    def _read_row(self, index: int) -> NDArray[np.generic]:
        """One row of a deflated member: reads go forward; a row behind reopens the stream."""
        size = self.layout.row_bytes
        start = index * size
        if self._stream is None or start < self._position:
            self.close()
            self._archive = _open(self.path)
            self._stream = self._archive.open(self.layout.member)
            self._stream.read(self.layout.data_offset)
            self._position = 0
        try:
            while self._position < start:
                skipped = self._stream.read(min(start - self._position, READ_BLOCK))
                if not skipped:
                    raise ValueError("the array ends before its declared size")
                self._position += len(skipped)
            data = b"".join(_chunks(self._stream, size))
        except _ZIP_ERRORS as exc:
            raise ValueError(f"the array cannot be read: {exc}") from exc
        if len(data) != size:
            raise ValueError("the array ends before its declared size")
        self._position += size
        return np.frombuffer(data, dtype=self.layout.dtype).reshape(self.layout.shape[1:])

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        if self._archive is not None:
            self._archive.close()
        self._stream = self._archive = None
