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
