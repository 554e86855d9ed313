//! The compiled-artifact cache: a second load is a cache hit; a corrupt
//! artifact is discarded and recompiled.

use super::support::*;
use weir::engine::{Engine, EngineConfig, HttpAllowlist, LoadSource};
use weir_tests::guests;

#[test]
fn second_load_comes_from_the_cache_and_corruption_recompiles() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig { cache_dir: Some(dir.path().to_owned()), ..EngineConfig::default() };
    let bytes = std::fs::read(guests::HIGH_VALUE_ORDERS).unwrap();

    let first = Engine::new(config.clone()).unwrap().load("hv", &bytes).unwrap();
    assert_eq!(first.source(), LoadSource::Compiled);

    let engine = Engine::new(config.clone()).unwrap();
    let second = engine.load("hv", &bytes).unwrap();
    assert_eq!(second.source(), LoadSource::Cache);
    assert_eq!(second.sha256(), first.sha256());
    let mut op = weir::operator::Operator::new(second, "{}", HttpAllowlist::default()).unwrap();
    assert!(op.filter(&order_batch(&orders(50))).unwrap().batch.num_rows() > 0, "cached artifact runs");

    let artifact = engine.cache().unwrap().path_for(first.sha256());
    std::fs::write(&artifact, b"corrupted").unwrap();
    let third = Engine::new(config).unwrap().load("hv", &bytes).unwrap();
    assert_eq!(third.source(), LoadSource::Compiled);
    assert!(std::fs::metadata(&artifact).unwrap().len() > 1000, "artifact rewritten");
}

#[test]
fn an_artifact_this_cache_did_not_write_is_recompiled_not_loaded() {
    // Another cache (another user, another data dir) compiled the same component.
    let bytes = std::fs::read(guests::HIGH_VALUE_ORDERS).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let their_engine = Engine::new(EngineConfig { cache_dir: Some(theirs.path().join("c")), ..EngineConfig::default() }).unwrap();
    let planted = their_engine.load("hv", &bytes).unwrap();
    let planted_file = their_engine.cache().unwrap().path_for(planted.sha256());

    let ours = tempfile::tempdir().unwrap();
    let config = EngineConfig { cache_dir: Some(ours.path().join("c")), ..EngineConfig::default() };
    let engine = Engine::new(config.clone()).unwrap();
    let target = engine.cache().unwrap().path_for(planted.sha256());
    // A valid artifact for this engine, dropped where ours would be: not trusted.
    std::fs::copy(&planted_file, &target).unwrap();
    let loaded = engine.load("hv", &bytes).unwrap();
    assert_eq!(loaded.source(), LoadSource::Compiled, "a planted artifact is never deserialized");
    assert_ne!(std::fs::read(&target).unwrap(), std::fs::read(&planted_file).unwrap(), "replaced by our own");
    assert_eq!(Engine::new(config).unwrap().load("hv", &bytes).unwrap().source(), LoadSource::Cache, "ours loads");
}

#[test]
fn the_cache_directory_and_its_key_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("weir").join("compiled");
    Engine::new(EngineConfig { cache_dir: Some(dir.clone()), ..EngineConfig::default() }).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("artifact.key")), 0o600);
    assert_eq!(std::fs::metadata(dir.join("artifact.key")).unwrap().len(), 32);

    // An existing directory open to others is closed; a shared parent is refused.
    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    Engine::new(EngineConfig { cache_dir: Some(open.clone()), ..EngineConfig::default() }).unwrap();
    assert_eq!(mode(&open), 0o700);
    let shared = base.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = Engine::new(EngineConfig { cache_dir: Some(shared.join("compiled")), ..EngineConfig::default() }).err().expect("a shared parent is refused");
    assert!(error.to_string().contains("other users"), "{error}");
}
