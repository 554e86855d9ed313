#!/usr/bin/env bash
# Builds the component: wit-bindgen's C generator + clang (wasm32-wasi, reactor) +
# wit-component with the WASI reactor adapter, via weir's tools/guest-tool
# (apt: clang lld wasi-libc libclang-rt-dev-wasm32; WEIR_HOME/scripts/build-polyglot-guests c installs them).
set -euo pipefail
cd "$(dirname "$0")"
WEIR_HOME=${WEIR_HOME:-{{weir_home}}}
TOOL=${WEIR_GUEST_TOOL:-$WEIR_HOME/target/tools/guest-tool/release/weir-guest-tool}
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
# Filters and maps also take packed batches (contract 0.1.2).
world={{kind}}-operator packed=
case {{kind}} in filter | map) world=packed-$world packed=-DWEIR_PACKED ;; esac
bindings=${world//-/_}
# The SDK: every .c file of sdk/c but its unit tests.
sdk=()
for source in "$WEIR_HOME"/sdk/c/*.c; do
  [[ $source == *_test.c ]] || sdk+=("$source")
done
"$TOOL" bindgen "$WEIR_HOME/wit" "$world" "$gen"
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
  -I"$WEIR_HOME/sdk/c" -I"$gen" -DWEIR_{{KIND}} $packed \
  "${sdk[@]}" operator.c "$gen/$bindings.c" "$gen/${bindings}_component_type.o" \
  -Wl,--strip-all -o "$gen/core.wasm"
"$TOOL" componentize "$gen/core.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
