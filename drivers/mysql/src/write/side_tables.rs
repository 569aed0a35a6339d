//! The writer's side tables: the staging table a `replace` (or a new table) is loaded into, and
//! the replaced table between the swap and its drop. Named `<table>__osiris_stage_<run>` and
//! `<table>__osiris_old_<run>`, `<run>` a random tag of the write, shortened to MySQL's
//! 64-character limit.
//!
//! A writer holds the server lock `osiris_stage_<run>` (GET_LOCK, released when its session ends,
//! however it ends) from before it creates a side table until it disconnects. A side table whose
//! lock nobody holds therefore belongs to a write that is over: its process was killed or lost
//! the server before it could drop the table. [`drop_stale`] drops exactly those, never the side
//! table of a write running now.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::errors::within;
use crate::extract::quote_ident;

const KINDS: [&str; 2] = ["stage", "old"];
/// Hex digits of a run tag.
const TAG_LEN: usize = 8;

/// A random tag for the side tables of one write.
pub fn new_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:0width$x}", h.finish() as u32, width = TAG_LEN)
}

/// The table name before the suffix of a `kind` side table: `table`, shortened so the whole
/// name fits 64 characters.
fn prefix(table: &str, kind: &str) -> String {
    let suffix_len = format!("__osiris_{kind}_").chars().count() + TAG_LEN;
    table.chars().take(64usize.saturating_sub(suffix_len)).collect()
}

/// `<table>__osiris_<kind>_<tag>`.
pub fn name(table: &str, kind: &str, tag: &str) -> String {
    format!("{}__osiris_{kind}_{tag}", prefix(table, kind))
}

/// The server lock a write holds while its side tables may exist.
pub fn lock_name(tag: &str) -> String {
    format!("osiris_stage_{tag}")
}

/// The run tag of `candidate` if it is a side table of `table`.
fn tag_of<'a>(table: &str, candidate: &'a str) -> Option<&'a str> {
    KINDS.iter().find_map(|kind| {
        let rest = candidate.strip_prefix(&format!("{}__osiris_{kind}_", prefix(table, kind)))?;
        (rest.len() == TAG_LEN && rest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(rest)
    })
}

/// Takes the lock of `tag` (at once: the tag is new, so nobody else has it).
pub async fn claim(conn: &mut Conn, tag: &str, limit: Duration) -> Result<bool, mysql_async::Error> {
    let got: Option<Option<i64>> = within(limit, conn.exec_first("SELECT GET_LOCK(?, 0)", (lock_name(tag),))).await?;
    Ok(got.flatten() == Some(1))
}

/// Drops the side tables of `table` in `schema` whose write is over; returns their names.
pub async fn drop_stale(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    limit: Duration,
) -> Result<Vec<String>, mysql_async::Error> {
    // The staging prefix is the shorter one; `tag_of` then picks the side tables exactly. No
    // escapes: the session runs with NO_BACKSLASH_ESCAPES, where LIKE has no escape character, so
    // a `_` or `%` of the table name stays a wildcard, which only widens the candidates.
    let pattern = format!("{}%", prefix(table, "stage"));
    let names: Vec<String> = within(
        limit,
        conn.exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ?",
            (schema, pattern),
        ),
    )
    .await?;
    let mut dropped = Vec::new();
    for candidate in names {
        let Some(tag) = tag_of(table, &candidate) else { continue };
        let holder: Option<Option<u64>> =
            within(limit, conn.exec_first("SELECT IS_USED_LOCK(?)", (lock_name(tag),))).await?;
        if holder.flatten().is_some() {
            continue; // a write running now
        }
        let qualified = format!("{}.{}", quote_ident(schema), quote_ident(&candidate));
        within(limit, conn.query_drop(format!("DROP TABLE IF EXISTS {qualified}"))).await?;
        dropped.push(candidate);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_names_fit_mysql_identifiers_and_carry_the_run_tag() {
        let long = "é".repeat(80);
        let stage = name(&long, "stage", "0123abcd");
        assert_eq!(stage.chars().count(), 64);
        assert_eq!(tag_of(&long, &stage), Some("0123abcd"));
        let old = name("orders", "old", "deadbeef");
        assert_eq!(old, "orders__osiris_old_deadbeef");
        assert_eq!(tag_of("orders", &old), Some("deadbeef"));
        assert_eq!(tag_of("orders", "orders__osiris_stage_0123abcd"), Some("0123abcd"));
        assert_eq!(new_tag().len(), TAG_LEN);
    }

    #[test]
    fn other_tables_are_never_side_tables() {
        assert_eq!(tag_of("orders", "orders_v2__osiris_stage_0123abcd"), None);
        assert_eq!(tag_of("orders", "orders__osiris_stage_0123abc"), None);
        assert_eq!(tag_of("orders", "orders__osiris_stage_0123abcx"), None);
        assert_eq!(tag_of("orders", "orders__osiris_stage_0123abcd_copy"), None);
        assert_eq!(tag_of("orders", "orders"), None);
    }
}
