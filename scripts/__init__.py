"""HistGen MONAI bundle package.

MONAI bundle convention: configs reference this package as ``scripts.<module>``; MONAI Label only
reloads custom code that lives in a package named ``scripts``.
"""

from . import config_checks as config_checks  # noqa: E402  (configs call scripts.config_checks.check_settings())
from .error_messages import install_readable_errors  # noqa: E402

install_readable_errors()  # only under ``python -m monai.bundle``: errors end in one readable line
