"""Open a whole-slide image through MONAI's ``WSIReader`` and describe its pyramid.

A :class:`Slide` holds one opened file plus what the rest of the pipeline needs: level sizes,
downsamples, microns per pixel and region reads returning ``uint8 [H, W, 3]`` arrays. Geometry is
computed here, from level sizes, so that cuCIM and OpenSlide give the same numbers for the same
file (cuCIM reports float32 downsamples, OpenSlide float64 ones).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import WSIReader

from ..quiet_natives import cufile_quiet
from .backend_choice import BackendChoice, choose_backend
from .slide_errors import MissingMppError, SlideOpenError, SlideReadError
from .slide_mpp import read_level0_mpp

#: whether this process has opened a slide with cuCIM (the first open starts cuFile, see :mod:`scripts.quiet_natives`)
_CUFILE_STARTED = False


class Slide:
    """One opened slide.

    Args:
        path: slide file.
        wsi_backend: ``"auto"`` (cuCIM where it handles the file, else OpenSlide), ``"cucim"`` or
            ``"openslide"``.
        assume_mpp: microns per pixel at level 0 to use when the file has no resolution metadata.
            Metadata, when present, wins.
        name: label used in error messages; defaults to the file name.

    Raises:
        SlideOpenError: missing, truncated or unopenable file.
        MissingMppError: no resolution metadata and no ``assume_mpp``.

    Note:
        Coordinates follow OpenSlide: ``(x, y)`` in level-0 pixels; sizes are ``(width, height)``.

        .. code-block:: python

            slide = Slide("CMU-1-Small-Region.svs")
            slide.backend, slide.mpp, slide.level_dimensions  # 'cucim', 0.499, [(2220, 2967)]
            tile = slide.read_region((0, 0), (256, 256), level=0)  # uint8 [256, 256, 3]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        wsi_backend: str = "auto",
        assume_mpp: float | None = None,
        name: str | None = None,
    ):
        self.path = str(path)
        self.name = name or Path(path).name
        self.choice: BackendChoice = choose_backend(self.path, wsi_backend)
        self.backend = self.choice.backend
        self.reader, self.wsi = self._open(self.backend)
        if wsi_backend == "auto" and self.backend == "cucim" and not self._cucim_geometry_ok():
            self.close()  # cuCIM opened it but saw no pyramid: let OpenSlide have it
            self.choice = BackendChoice("openslide", "cuCIM reported an empty image")
            self.backend = "openslide"
            self.reader, self.wsi = self._open("openslide")

        self.level_count: int = int(self.reader.get_level_count(self.wsi))
        self.level_dimensions: list[tuple[int, int]] = []
        for level in range(self.level_count):
            height, width = self.reader.get_size(self.wsi, level)
            self.level_dimensions.append((int(width), int(height)))
        if min(self.level_dimensions[0]) < 1:
            raise SlideOpenError(self.name, f"level 0 has no pixels: {self.level_dimensions[0]}")
        w0, h0 = self.level_dimensions[0]
        # OpenSlide's own rule: mean of the width and height ratios.
        self.level_downsamples: list[float] = [(w0 / w + h0 / h) / 2.0 for w, h in self.level_dimensions]

        self.metadata_mpp = read_level0_mpp(self.wsi, self.backend)
        if self.metadata_mpp is not None:
            self.mpp: float = self.metadata_mpp
        elif assume_mpp is not None:
            self.mpp = float(assume_mpp)
        else:
            self.close()
            raise MissingMppError(
                self.name,
                "no microns-per-pixel metadata (checked Aperio MPP, openslide.mpp-x/y and TIFF resolution "
                "with a length unit); set assume_mpp (e.g. 0.5 for 20x, 0.25 for 40x) for such slides",
            )

    def _open(self, backend: str) -> tuple[Any, Any]:
        reader = WSIReader(backend=backend, channel_dim=-1)
        try:
            if backend == "cucim" and not _CUFILE_STARTED:
                return reader, self._first_cucim_read(reader)
            return reader, reader.read(self.path)
        except Exception as err:
            problem = f"{backend} cannot open it ({type(err).__name__}: {err})"
            if backend == "openslide" and self.choice.reason not in ("forced", ""):
                problem += f"; not given to cuCIM: {self.choice.reason}"
            raise SlideOpenError(self.name, problem) from err

    def _first_cucim_read(self, reader: Any) -> Any:
        """The process's first cuCIM open starts cuFile, which prints lines a CPU user cannot act on: quiet it."""
        global _CUFILE_STARTED
        with cufile_quiet():
            wsi = reader.read(self.path)
        _CUFILE_STARTED = True
        return wsi

    def _cucim_geometry_ok(self) -> bool:
        dims = self.wsi.resolutions["level_dimensions"]
        return bool(dims) and min(dims[0]) > 1

    # ------------------------------------------------------------------ geometry
    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 size ``(width, height)``."""
        return self.level_dimensions[0]

    def level_mpp(self, level: int) -> float:
        """Microns per pixel at ``level``."""
        return self.mpp * self.level_downsamples[level]

    def file_stat(self) -> tuple[int, float]:
        """``(size in bytes, mtime)`` of the slide file, as recorded in feature files."""
        stat = os.stat(self.path)
        return int(stat.st_size), float(stat.st_mtime)

    # ------------------------------------------------------------------ pixels
    def read_region(self, location: tuple[int, int], size: tuple[int, int], level: int) -> np.ndarray:
        """Read one region through MONAI's reader.

        Args:
            location: ``(x, y)`` of the top-left corner in level-0 pixels.
            size: ``(width, height)`` at ``level``.
            level: pyramid level.

        Returns:
            ``uint8 [height, width, 3]`` RGB array.
        """
        x, y = int(location[0]), int(location[1])
        width, height = int(size[0]), int(size[1])
        try:
            patch, _ = self.reader.get_data(self.wsi, location=(y, x), size=(height, width), level=level)
        except Exception as err:
            raise SlideReadError(
                self.name, f"cannot read {width}x{height} at ({x}, {y}) level {level} ({type(err).__name__}: {err})"
            ) from err
        rgb = np.asarray(patch, dtype=np.uint8)[..., :3]
        if not (rgb.flags.c_contiguous and rgb.flags.writeable):
            rgb = rgb.copy()  # MONAI may hand out read-only views; callers wrap this in tensors
        return rgb

    def native_handle(self) -> Any:
        """The backend object (``cucim.CuImage`` or ``openslide.OpenSlide``) for batched reads."""
        return self.wsi

    def close(self) -> None:
        """Release the file handle (OpenSlide); cuCIM objects are released when collected."""
        closer = getattr(self.wsi, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Slide({self.name!r}, backend={self.backend!r}, mpp={self.mpp:.4f}, levels={self.level_dimensions})"


def open_slide(
    path: str | os.PathLike, wsi_backend: str = "auto", assume_mpp: float | None = None, name: str | None = None
) -> Slide:
    """Open ``path`` as a :class:`Slide` (see its docstring for the arguments)."""
    return Slide(path, wsi_backend=wsi_backend, assume_mpp=assume_mpp, name=name)
