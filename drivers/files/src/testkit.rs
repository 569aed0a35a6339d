//! Test harness: runs drivers against a real step cache and real files.
