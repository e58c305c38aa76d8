#!/usr/bin/env bash
# Regenerates the QAT round-trip fixtures in test/fixtures/qat/ (committed; CI needs no Python).
#
# Needs Debian's Python packages (PyPI is not used); install them once with
#     apt-get update && apt-get install -y python3-torch python3-onnx python3-numpy python3-sklearn
# and a built CLI (npm run build): the script calls dist/cli/compile.js twice.
#
#     scripts/gen-qat-fixtures.sh            write the fixtures, then run python/test_qat.py on them
#     PYTHON=/path/to/python3 scripts/gen-qat-fixtures.sh
#
# Seeds are fixed. What the files are: test/fixtures/qat/README.md; the steps:
# python/imssa_qat/make_fixtures.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# A python3 earlier on PATH (pyenv, venv) may not see Debian's dist-packages.
if [[ -z "${PYTHON:-}" ]]; then
  if /usr/bin/python3 -c 'import torch, onnx, numpy, sklearn' 2>/dev/null; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch, onnx, numpy, sklearn' 2>/dev/null; then
  echo "gen-qat-fixtures: $PYTHON cannot import torch, onnx, numpy and sklearn." >&2
  echo "  apt-get update && apt-get install -y python3-torch python3-onnx python3-numpy python3-sklearn" >&2
  exit 1
fi
if [[ ! -f dist/cli/compile.js ]]; then
  echo "gen-qat-fixtures: dist/cli/compile.js is missing; run npm run build first" >&2
  exit 1
fi

export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$root/python:$root/exporters/pytorch${PYTHONPATH:+:$PYTHONPATH}"
# Relative paths: they are recorded in the configurations (model.source, calibration.file.path).
"$PYTHON" -m imssa_qat.make_fixtures test/fixtures/qat
"$PYTHON" python/test_qat.py
