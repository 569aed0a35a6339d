//! MySQL/MariaDB drivers of Osiris in Rust: `mysql.extractor` (binary protocol, rows decoded
//! straight into Arrow RecordBatches by a lean client built on mysql_common) and `mysql.writer`
//! (atomic append/replace/upsert from Arrow RecordBatches, on mysql_async). See `docs/mysql.md`
//! for the type mappings.

pub mod decode;
pub mod errors;
pub mod extract;
pub mod session;
pub mod tls;
pub mod types;
pub mod wire;
pub mod write;

use osiris_engine::registry::{Registry, RegistryError};

pub use crate::extract::{EXTRACTOR_NAME, MysqlExtractor};
pub use crate::write::{MysqlWriter, WRITER_NAME};

/// Registers the MySQL components.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(MysqlExtractor::new())?;
    registry.register(MysqlWriter::new())?;
    Ok(())
}

/// Names of the components [`register`] adds.
pub fn component_names() -> [&'static str; 2] {
    [EXTRACTOR_NAME, WRITER_NAME]
}
