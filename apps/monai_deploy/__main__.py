"""``python apps/monai_deploy -i ... -o ... -m ...`` (how a packaged MAP starts the app)."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent / "app.py"), run_name="__main__")
