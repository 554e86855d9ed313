#!/usr/bin/env bash
# Builds the component: wit-bindgen-go (wit-bindgen-cli 0.63.0) writes the
# bindings, Go 1.27 (GOOS=wasip1, c-shared reactor) compiles them with weir's
# SDK glue and operator.go, and weir's tools/guest-tool embeds the world and
# componentizes with the WASI reactor adapter. No Go module proxy is needed.
# (WEIR_HOME/scripts/build-polyglot-guests go installs the toolchain into
# WEIR_HOME/target/tools.)
set -euo pipefail
cd "$(dirname "$0")"
WEIR_HOME=${WEIR_HOME:-{{weir_home}}}
tools=$WEIR_HOME/target/tools
GO=${GO:-$(find "$tools/go-venv/lib" -path '*/site-packages/go/bin/go' -type f 2>/dev/null | head -n1 || true)}
GO=${GO:-$(command -v go)}
WIT_BINDGEN=${WIT_BINDGEN:-$tools/wit-bindgen-{{wit_bindgen_go}}/bin/wit-bindgen}
TOOL=${WEIR_GUEST_TOOL:-$tools/guest-tool/release/weir-guest-tool}
kind={{kind}}
wit=$WEIR_HOME/wit world=$kind-operator glue=("$WEIR_HOME/sdk/go/_glue/weirglue" "$WEIR_HOME/sdk/go/_glue/export_weir_operator_$kind")
if [[ $kind == filter || $kind == map ]]; then # they also take packed batches (contract 0.1.2)
  world=packed-$world glue+=("$WEIR_HOME/sdk/go/_glue/export_weir_operator_${kind}_packed")
elif [[ $kind == sink ]]; then # sinks may send HTTP requests (weir.HTTPPost)
  wit=$WEIR_HOME/sdk/go/wit world=sink-operator-http glue+=("$WEIR_HOME/sdk/go/_glue/weirhttp")
fi
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
PATH=$(dirname "$GO"):$PATH "$WIT_BINDGEN" go --quiet --world "$world" --out-dir "$gen" "$wit" > /dev/null
cp -r "${glue[@]}" ./*.go "$gen/"
cat > "$gen/go.mod" <<EOF_MOD
module wit_component

go 1.27.1

require (
	go.bytecodealliance.org/pkg v0.4.0
	weir/sdk v0.0.0
)

replace go.bytecodealliance.org/pkg => $WEIR_HOME/sdk/go/third_party/go-pkg

replace weir/sdk => $WEIR_HOME/sdk/go
EOF_MOD
# -checklinkname=0: the bindings' runtime reaches runtime.sbrk via //go:linkname.
(cd "$gen" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-$tools/go-cache}" \
  GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -trimpath -ldflags="-s -checklinkname=0" -o core.wasm .)
"$TOOL" embed "$wit" "$world" "$gen/core.wasm"
"$TOOL" componentize "$gen/core.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
