//! Deploys are atomic from the outside: the registry's live version moves
//! only once every pipeline runs the new one, a client that disconnects
//! mid-deploy does not stop it half-way, and a pipeline that does not
//! answer in time is sent back with the others. The pipeline is kept in a
//! long batch by records that make its second operator spin.

use super::admin::{Bench, TOKEN, order, status, wait_for_input};
use super::pipeline::engine;
use serde_json::{Value, json};
use std::time::Duration;
use weir::client::AdminClient;
use weir::deploy::Deployer;
use weir::pipeline::PipelineHandle;
use weir::registry::Registry;
use weir_tests::guests;

/// A second operator, `slow`: a record whose `action` is `loop` spins until
/// the call deadline, so the pipeline is busy in a batch for a while.
fn with_slow_operator() -> String {
    format!("\n[[pipelines.p.operators]]\nplugin = \"{}\"\nname = \"slow\"\n", guests::MISBEHAVE)
}

fn busy(i: usize) -> String {
    format!(r#"{{"order_id":"o-{i:05}","customer_id":"c","total_amount":1.0,"action":"loop"}}"#)
}

/// Records that make one batch busy for seconds: each looping record runs
/// into the 200 ms call deadline several times while the batch is retried
/// and the record isolated.
const BUSY_RECORDS: usize = 12;

/// Puts the pipeline into a long batch (it has read the looping records).
async fn make_busy(bench: &Bench, handle: &PipelineHandle) {
    bench.produce(10..10 + BUSY_RECORDS, busy).await;
    wait_for_input(handle, (10 + BUSY_RECORDS) as u64).await;
}

async fn serve(registry: &Registry, handle: &PipelineHandle, swap_timeout: Duration) -> AdminClient {
    super::support::logs();
    let deployer = Deployer::new(engine(), registry.clone(), vec![handle.control()], 64 << 20).with_swap_timeout(swap_timeout);
    let state = weir::admin::AdminState::new(deployer, Some(TOKEN.into()));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    let addr = weir::admin::start("127.0.0.1:0".parse().unwrap(), state, false, stop_rx).await.unwrap();
    AdminClient::new(&format!("http://{addr}"), Some(TOKEN.into()))
}

/// Polls the plugin until its last deploy has ended.
async fn finished_deploy(client: &AdminClient) -> Value {
    for _ in 0..1200 {
        let plugin = client.get("/v1/plugins/stage").await.unwrap();
        if plugin["last_deploy"]["finished_at"].is_string() {
            return plugin;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the deploy did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_deploy_leaves_one_version_everywhere() {
    let bench = Bench::new(guests::IDENTITY, &with_slow_operator());
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    let client = serve(&registry, &handle, Duration::from_secs(60)).await;
    bench.produce(0..10, order).await;
    wait_for_input(&handle, 10).await;
    make_busy(&bench, &handle).await;
    let started = std::time::Instant::now();

    // The upload's client goes away while the pipeline has not swapped yet.
    let url = client.base_url().to_owned();
    let upload = std::fs::read(guests::ENRICH_ORDER).unwrap();
    let pusher = tokio::spawn(async move { AdminClient::new(&url, Some(TOKEN.into())).put_wasm("/v1/plugins/stage", upload).await });
    let mut seen_swapping = false;
    for _ in 0..1200 {
        let plugin = client.get("/v1/plugins/stage").await.unwrap();
        if plugin["last_deploy"]["state"] == json!("swapping") {
            // Between validation and the last swap the registry still says v1.
            assert_eq!(plugin["live"], json!(1), "{plugin}");
            assert_eq!(plugin["last_deploy"]["version"], json!(2), "{plugin}");
            seen_swapping = true;
            break;
        }
        if plugin["last_deploy"]["finished_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pusher.abort();
    assert!(pusher.await.unwrap_err().is_cancelled(), "the client left before the answer");
    eprintln!("disconnected while swapping: {seen_swapping} after {:?}", started.elapsed());
    assert!(seen_swapping, "the deploy was seen waiting for the busy pipeline");
    // The deploy went on without its client and ended with one version everywhere.
    let plugin = finished_deploy(&client).await;
    eprintln!("deploy finished after {:?}", started.elapsed());
    assert_eq!(plugin["last_deploy"]["state"], json!("live"), "{plugin}");
    assert_eq!(plugin["live"], json!(2), "{plugin}");
    assert_eq!(handle.stats().snapshot().plugin_versions["stage"], "v2");
    handle.shutdown();
    handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_does_not_answer_in_time_goes_back_with_the_others() {
    let bench = Bench::new(guests::IDENTITY, &with_slow_operator());
    let registry = Registry::in_memory();
    let handle = bench.start(&registry);
    // Shorter than one busy batch: the swap cannot be answered in time.
    let client = serve(&registry, &handle, Duration::from_millis(100)).await;
    bench.produce(0..10, order).await;
    wait_for_input(&handle, 10).await;
    make_busy(&bench, &handle).await;
    let started = std::time::Instant::now();
    let answer = client.put_wasm("/v1/plugins/stage", std::fs::read(guests::ENRICH_ORDER).unwrap()).await;
    let (code, message) = status(answer.unwrap_err());
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("no answer within") && message.contains("returned to version v1"), "{message}");

    // The late swap and the swap back were both queued: the pipeline ends on
    // v1, like the registry, which forgot the reverted version.
    for _ in 0..1200 {
        if handle.stats().snapshot().plugin_swaps >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("both swaps applied after {:?}", started.elapsed());
    let snapshot = handle.stats().snapshot();
    assert_eq!(snapshot.plugin_swaps, 2, "the late swap, then the swap back");
    assert_eq!(snapshot.plugin_versions["stage"], "v1");
    let plugin = client.get("/v1/plugins/stage").await.unwrap();
    assert_eq!(plugin["live"], json!(1), "{plugin}");
    assert_eq!(plugin["versions"].as_array().unwrap().len(), 1, "{plugin}");
    assert_eq!(plugin["last_deploy"]["state"], json!("reverted"), "{plugin}");
    handle.shutdown();
    handle.join().await.unwrap();
}
