#!/usr/bin/env bash
# Builds the component with componentize-js ({{componentize_js}}; npm install @bytecodealliance/componentize-js@{{componentize_js}}).
set -euo pipefail
cd "$(dirname "$0")"
WEIR_HOME=${WEIR_HOME:-{{weir_home}}}
CJS=${COMPONENTIZE_JS:-$(command -v componentize-js || echo "$WEIR_HOME/target/tools/js/node_modules/.bin/componentize-js")}
# The SDK is one file: copied next to the source (the componentizer reads
# only files under the current directory).
cp "$WEIR_HOME/sdk/js/weir.js" weir.js
"$CJS" index.js --wit "$WEIR_HOME/wit" --world-name {{kind}}-operator --disable stdio random clocks http fetch-event -o {{name}}.wasm
echo "built {{name}}.wasm"
