"""HistGen MONAI bundle package.

MONAI bundle convention: configs reference this package as ``scripts.<module>``; MONAI Label only
reloads custom code that lives in a package named ``scripts``.
"""

from .quiet_natives import import_cucim_quietly  # noqa: E402

# before anything imports cuCIM: cufile.log goes to the temp folder, not the cwd, and cuFile's "no libcuda"
# lines on a CPU machine become one debug log line
import_cucim_quietly()

from . import config_checks as config_checks  # noqa: E402  (configs call scripts.config_checks.check_settings())
from .error_messages import install_readable_errors  # noqa: E402

install_readable_errors()  # only under ``python -m monai.bundle``: errors end in one readable line
