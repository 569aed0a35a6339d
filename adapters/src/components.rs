//! The components compiled into this build.

use osiris_engine::registry::Registry;

/// Every built-in component: the file drivers (CSV, Parquet), the MySQL extractor and the SQL
/// transform (`sql.processor` and its Osiris alias `duckdb.processor`).
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    osiris_driver_files::register(&mut registry).expect("built-in components have distinct names");
    osiris_driver_mysql::register(&mut registry).expect("built-in components have distinct names");
    osiris_driver_sql::register(&mut registry).expect("built-in components have distinct names");
    registry
}
