//! The treasurer's column choices for CSV layouts no profile knows, kept by header signature
//! so the next export of the same kind is read without asking (docs/IMPORTS.md).

use std::collections::BTreeMap;

use redis::AsyncCommands;

use crate::extract::csv::Mapping;
use crate::extract::profiles::Role;
use crate::keys::Keys;
use crate::redis_conn::{RedisError, RedisPool};

/// Layouts kept at most: a deployment meets a handful; a bound keeps a runaway client from
/// filling Redis.
pub const MAX_SAVED_LAYOUTS: u64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    #[error("Redis error: {0}")]
    Redis(#[from] RedisError),
    #[error(
        "{MAX_SAVED_LAYOUTS} file layouts are saved already; ask the operator to clear old ones"
    )]
    Full,
    #[error("{0}")]
    Invalid(String),
}

/// Reads and saves column choices.
#[derive(Clone)]
pub struct ColumnChoices {
    redis: RedisPool,
    keys: Keys,
}

impl ColumnChoices {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
        }
    }

    /// Every saved layout (a choice that no longer parses is left out, not fatal).
    pub async fn all(&self) -> Result<BTreeMap<String, Mapping>, ColumnsError> {
        let raw: BTreeMap<String, String> = self
            .redis
            .get()
            .await?
            .hgetall(self.keys.csv_columns())
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|m| (k, m)))
            .collect())
    }

    /// Saves the choices for the layout with `signature` and `columns` columns.
    pub async fn save(
        &self,
        signature: &str,
        columns: usize,
        mapping: &Mapping,
    ) -> Result<(), ColumnsError> {
        check(columns, mapping)?;
        let mut conn = self.redis.get().await?;
        let key = self.keys.csv_columns();
        let known: bool = conn.hexists(&key, signature).await?;
        if !known {
            let n: u64 = conn.hlen(&key).await?;
            if n >= MAX_SAVED_LAYOUTS {
                return Err(ColumnsError::Full);
            }
        }
        let json = serde_json::to_string(mapping)
            .map_err(|e| ColumnsError::Invalid(format!("cannot encode the choices: {e}")))?;
        let _: () = conn.hset(&key, signature, json).await?;
        Ok(())
    }
}

/// A choice the reader can use: one role per column at most, an amount, and something that
/// tells gifts apart (a name or a reference).
pub fn check(columns: usize, mapping: &Mapping) -> Result<(), ColumnsError> {
    let bad = |m: &str| Err(ColumnsError::Invalid(m.to_string()));
    if mapping.roles.len() != columns {
        return bad(
            "the choices do not match the file's columns; reload the page and choose again",
        );
    }
    let has = |r: Role| mapping.roles.contains(&Some(r));
    if !has(Role::Amount) {
        return bad("choose the column that holds the amount");
    }
    if !crate::extract::profiles::WHO_ROLES.into_iter().any(has) {
        return bad("choose a column with the donor's name, or a check number or reference");
    }
    for (i, role) in mapping.roles.iter().enumerate() {
        if role.is_some() && mapping.roles[..i].contains(role) {
            return bad("each kind of column can be chosen once");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_need_an_amount_and_a_donor_or_reference() {
        let m = |roles: &[Option<Role>]| Mapping {
            roles: roles.to_vec(),
        };
        assert!(check(2, &m(&[Some(Role::Amount), Some(Role::Name)])).is_ok());
        assert!(check(3, &m(&[Some(Role::Amount), Some(Role::Name)])).is_err());
        assert!(check(2, &m(&[Some(Role::Date), Some(Role::Name)])).is_err());
        assert!(check(2, &m(&[Some(Role::Amount), Some(Role::Date)])).is_err());
        assert!(check(
            3,
            &m(&[Some(Role::Amount), Some(Role::Name), Some(Role::Name)])
        )
        .is_err());
        assert!(check(3, &m(&[Some(Role::Amount), None, Some(Role::CheckNumber)])).is_ok());
    }
}
