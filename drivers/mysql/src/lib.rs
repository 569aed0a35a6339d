//! MySQL/MariaDB drivers of Osiris in Rust: `mysql.extractor` (binary protocol, rows decoded
//! straight into Arrow RecordBatches by a lean client built on mysql_common). See `docs/mysql.md` for the type mapping.

pub mod decode;
pub mod errors;
pub mod extract;
pub mod types;
pub mod wire;

use osiris_engine::registry::{Registry, RegistryError};

pub use crate::extract::{EXTRACTOR_NAME, MysqlExtractor};

/// Registers the MySQL components.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(MysqlExtractor::new())?;
    Ok(())
}

/// Names of the components [`register`] adds.
pub fn component_names() -> [&'static str; 1] {
    [EXTRACTOR_NAME]
}
