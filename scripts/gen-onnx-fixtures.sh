#!/usr/bin/env bash
# Regenerates the ONNX front-end fixtures in test/fixtures/onnx/ (committed; CI needs no Python).
#
# Needs Debian's Python packages (PyPI is not used); install them once with
#     apt-get update && apt-get install -y python3-torch python3-onnx python3-numpy python3-sklearn
# (torch 1.13, onnx 1.12, numpy 1.24, scikit-learn 1.2 on bookworm; scikit-learn bundles the
# digits data set the classifier fixtures are trained on, so nothing is downloaded). This
# script installs nothing itself.
#
#     scripts/gen-onnx-fixtures.sh            write the fixtures, then check them with ONNX Runtime
#     PYTHON=/path/to/python3 scripts/gen-onnx-fixtures.sh
#
# Seeds are fixed: a rerun on the same machine reproduces the same files (other CPUs may differ
# in the last float32 bits). The classifiers scan_cls and digits64 are trained first
# (exporters/pytorch/train_digits.py, single-threaded, about 3 minutes together), then the QAT
# fixture scan_cls_qat_op17 (exporters/pytorch/train_digits_qat.py; needs npm run build). What each
# fixture holds is in test/fixtures/onnx/README.md; exporters/pytorch/make_fixtures.py writes them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/test/fixtures/onnx"

# A python3 earlier on PATH (pyenv, venv) may not see Debian's dist-packages: prefer the
# system interpreter when it has torch.
if [[ -z "${PYTHON:-}" ]]; then
  if /usr/bin/python3 -c 'import torch, onnx, numpy, sklearn' 2>/dev/null; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch, onnx, numpy, sklearn' 2>/dev/null; then
  echo "gen-onnx-fixtures: $PYTHON cannot import torch, onnx, numpy and sklearn." >&2
  echo "  apt-get update && apt-get install -y python3-torch python3-onnx python3-numpy python3-sklearn" >&2
  exit 1
fi

# The QAT fixture (scan_cls_qat_op17) compiles its training configuration with the CLI:
# check before anything is deleted.
if [[ ! -f "$root/dist/cli/compile.js" ]]; then
  echo "gen-onnx-fixtures: dist/cli/compile.js is missing; run npm run build first (train_digits_qat.py needs imssa-compile)" >&2
  exit 1
fi

export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$out"
# drop generated files (README.md is hand-written) so renamed fixtures leave nothing stale
find "$out" -maxdepth 1 -type f \( -name '*.onnx' -o -name '*.npy' -o -name '*.safetensors' -o -name '*.s4d' -o -name 'fixtures.json' \) -delete

"$PYTHON" "$root/exporters/pytorch/make_fixtures.py" "$out"
# QAT fixture: fine-tunes the scan_cls weights just written against xbar64 (imssa_qat) and adds
# its entry to fixtures.json (about 5 minutes)
"$PYTHON" "$root/exporters/pytorch/train_digits_qat.py" --out "$out" --cli "$root/dist/cli/compile.js"

# End-to-end check of the written graphs with ONNX Runtime (a dev dependency of imssa).
if [[ -d "$root/node_modules/onnxruntime-node" ]]; then
  node "$root/exporters/pytorch/check_ort.mjs" "$out"
else
  echo "gen-onnx-fixtures: node_modules/onnxruntime-node missing (npm ci): ONNX Runtime check skipped" >&2
fi
