// The weir Go SDK (package weir). Built into operators by
// scripts/build-polyglot-guests go together with the bindings of
// wit-bindgen-go; see docs/sdk-go.md. No dependencies.
module weir/sdk

go 1.25
