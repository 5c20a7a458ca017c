"""HistGen MONAI bundle package.

MONAI bundle convention: configs reference this package as ``scripts.<module>``; MONAI Label only
reloads custom code that lives in a package named ``scripts``.
"""

import sys

from .quiet_natives import import_cucim_quietly, point_cufile_log

# before anything imports cuCIM: cufile.log goes to the temp folder, not the cwd. cuFile starts (and prints
# its "no libcuda" lines on a CPU machine) only when cuCIM is imported after torch; so cuCIM is imported here,
# quietly, only where torch already is, and the rooms that import torch do it first thing (their
# ``__init__``). Light processes (the demo's slide writers) import neither.
point_cufile_log()
if "torch" in sys.modules:
    import_cucim_quietly()

from . import config_checks as config_checks  # noqa: E402  (configs call scripts.config_checks.check_settings())
from .error_messages import install_readable_errors  # noqa: E402

install_readable_errors()  # only under ``python -m monai.bundle``: errors end in one readable line
