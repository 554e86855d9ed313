#!/usr/bin/env bash
# Builds the component with componentize-py ({{componentize_py}}; pip install componentize-py=={{componentize_py}}).
set -euo pipefail
cd "$(dirname "$0")"
WEIR_HOME=${WEIR_HOME:-{{weir_home}}}
CPY=${COMPONENTIZE_PY:-$(command -v componentize-py || echo "$WEIR_HOME/target/tools/py-venv/bin/componentize-py")}
"$CPY" -d "$WEIR_HOME/wit" -w {{kind}}-operator componentize app -p . -p "$WEIR_HOME/sdk/python" -o {{name}}.wasm
echo "built {{name}}.wasm"
