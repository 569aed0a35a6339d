//! The library example (`examples/embed.rs`) runs and its stream sees every row.

#[path = "../examples/embed.rs"]
#[allow(dead_code)]
mod embed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_streams_every_row_and_writes_the_outputs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let rows = embed::run_orders_example(root, out.path()).await.unwrap();
    assert_eq!(rows, 6);
    let input = std::fs::read_to_string(root.join("examples/data/orders.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("orders.csv")).unwrap(), input);
    assert!(out.path().join("orders.parquet").is_file());
}
