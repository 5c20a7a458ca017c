#!/usr/bin/env bash
# Install MONAI Label for apps/monailabel into build/monailabel_env (a --target folder, put on PYTHONPATH).
#
# Why not `pip install monailabel`: monailabel 0.8.5 (newest) depends on numpymaxflow, which needs
# numpy < 2; with the project's numpy 2.4.6 pip reports ResolutionImpossible, and without the
# constraints it downgrades numpy to 1.26.4 (breaking torch/monai wheels built for numpy 2).
# MONAI Label runs fine with numpy 2 as long as numpymaxflow (used by its scribbles tasks only)
# is absent, so its import-time dependencies are installed here with --no-deps, beside the venv.
#
# Usage (from the repository root): bash apps/monailabel/install.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${1:-.venv/bin/python}"
TARGET=build/monailabel_env
# --target puts the wheel's data folder (sample-apps, plugins) at the same path as the package; without
# --upgrade pip keeps the package and skips that data, which the app does not need.
rm -rf "$TARGET"
"$PYTHON" -m pip install -q --no-deps --target "$TARGET" -r apps/monailabel/requirements.txt
echo "MONAI Label installed in $TARGET; run it with PYTHONPATH=$TARGET (see docs/share_and_serve/monailabel.md)"
