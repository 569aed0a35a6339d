//! File drivers.
use osiris_engine::registry::{Registry, RegistryError};

/// Registers the file components.
pub fn register(_registry: &mut Registry) -> Result<(), RegistryError> {
    Ok(())
}
