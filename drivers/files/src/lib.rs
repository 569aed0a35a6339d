//! File drivers.
