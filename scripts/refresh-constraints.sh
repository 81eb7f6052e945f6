#!/usr/bin/env bash
# Rewrites constraints.txt: the exact versions the README's commands and CI install.
# Installs every extra of archspec into a throw-away venv WITHOUT the old constraints
# (so it takes the newest releases pyproject.toml's ranges allow), runs the test suite
# there, and writes the freeze only if the suite passes. Review the diff and commit it.
#   bash scripts/refresh-constraints.sh            # refresh and test
#   SKIP_TESTS=1 bash scripts/refresh-constraints.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -e '.[test,latency,train,onnx,search,torch]'
if [ -z "${SKIP_TESTS:-}" ]; then
  "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider
fi
{
  echo "# Exact versions the README's commands and .ci/run install (pip install -c constraints.txt)."
  echo "# pyproject.toml keeps the ranges archspec supports as a library; this file is what was"
  echo "# tested. Regenerate with: bash scripts/refresh-constraints.sh  ($(date -u +%F), $(python3 --version))"
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v -i '^archspec' | sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins)"
