"""Imported first by the rooms that load torch and MONAI: cuCIM is imported once, quietly, before they do.

cuCIM's cuFile layer starts (and prints its "no libcuda" lines on a CPU machine) when cuCIM is imported after
torch; MONAI imports cuCIM as soon as ``monai`` is imported. Importing this module first routes that start-up
through :func:`scripts.quiet_natives.import_cucim_quietly`. The demo's slide writers import none of those
rooms, so they stay free of torch.
"""

from __future__ import annotations

from .quiet_natives import import_cucim_quietly

#: whether cuCIM is installed (its import succeeded)
CUCIM_FOUND = import_cucim_quietly()
