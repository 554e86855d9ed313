//! Build helper for the weir C SDK (`sdk/c`), used by
//! `scripts/build-polyglot-guests c`:
//!
//! * `weir-guest-tool bindgen <wit-dir> <world> <out-dir>` writes wit-bindgen's
//!   C bindings for one world (`<world>.h`, `<world>.c` and
//!   `<world>_component_type.o`, which carries the component type into the
//!   linked module).
//! * `weir-guest-tool componentize <core.wasm> <out.wasm>` turns a
//!   `wasm32-wasip1` core module into a component with the WASI preview1
//!   *reactor* adapter (the module has no `_start`).
//! * `weir-guest-tool embed <wit-dir> <world> <core.wasm>` adds the world's
//!   component type to a core module whose toolchain cannot link it in (Go:
//!   the bindings of wit-bindgen-go carry no `_component_type.o`), in place.
//!
//! Pinned: wit-bindgen-c 0.57.1 (the wit-bindgen the Rust guests use),
//! wit-component 0.247.0, the preview1 adapter of wasmtime 48.0.8.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::Files;

fn bindgen(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(wit)
        .with_context(|| format!("parsing {}", wit.display()))?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let mut files = Files::default();
    let mut generator = wit_bindgen_c::Opts::default().build();
    generator.generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn componentize(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .with_context(|| format!("componentizing {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn embed(wit: &Path, world: &str, core: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(wit)
        .with_context(|| format!("parsing {}", wit.display()))?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let mut module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    std::fs::write(core, module).with_context(|| format!("writing {}", core.display()))?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bindgen", wit, world, out] => bindgen(Path::new(wit), world, Path::new(out)),
        ["componentize", core, out] => componentize(Path::new(core), Path::new(out)),
        ["embed", wit, world, core] => embed(Path::new(wit), world, Path::new(core)),
        ["--version"] => {
            println!("weir-guest-tool {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => bail!(
            "usage: weir-guest-tool bindgen <wit-dir> <world> <out-dir>\n       \
             weir-guest-tool componentize <core.wasm> <out.wasm>\n       \
             weir-guest-tool embed <wit-dir> <world> <core.wasm>"
        ),
    }
}
