#!/usr/bin/env bash
# Install the MONAI Deploy App SDK for apps/monai_deploy into build/monai_deploy_env (a --target folder).
#
# Why a side folder and this version:
# - monai-deploy-app-sdk >= 0.6 runs on NVIDIA Holoscan (4.0.0 needs holoscan-cu13, tritonclient[all],
#   cuda-python; older ones holoscan/cupy-cuda12x): CUDA-only wheels. 0.5.1 is the newest pure-Python SDK.
# - 0.5.1 imports pkg_resources, which setuptools >= 81 no longer ships (the venv has 84), so it
#   needs setuptools < 81 beside it.
# - its package is `monai.deploy`, inside MONAI's own package folder: installed into the venv, every
#   `import monai` would import it too (MONAI imports all its subpackages) and fail when it fails.
#   Kept in build/monai_deploy_env, it is added by apps/monai_deploy/sdk_path.py only where the app runs.
#
# Usage (from the repository root): bash apps/monai_deploy/install.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${1:-.venv/bin/python}"
TARGET=build/monai_deploy_env
rm -rf "$TARGET"
"$PYTHON" -m pip install -q --no-deps --target "$TARGET" \
    monai-deploy-app-sdk==0.5.1 "setuptools==80.10.2" typeguard==4.6.1 colorama==0.4.6
echo "MONAI Deploy App SDK 0.5.1 installed in $TARGET"
