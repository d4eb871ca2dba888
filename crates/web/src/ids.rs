//! Ids taken from request paths, checked for shape before anything builds a Redis key from
//! them: an id carrying `:` (or anything else) once reached keys of another type. Each route
//! takes its ids as these types (`web::Path<DepositId>`, `web::Path<(DepositId, RecordId)>`);
//! a malformed one is a 404, like an unknown one (`http::path_error`).

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an id names, and the shape it is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `uuid::Uuid::new_v4().simple()`: 32 lower-case hex digits (`DepositStore::create`).
    Deposit,
    /// 32 hex digits for a document job (`intake`), `send-` + 32 for a send-all job.
    Job,
    /// An upload's id in the store: 32 hex digits (`UploadStore::put`).
    File,
    /// A record's UUID as the API writes it: hyphenated, lower case.
    Record,
    /// A QuickBooks customer's id: digits.
    Customer,
}

impl IdKind {
    /// The word for it in a "not found" message.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Job => "job",
            Self::File => "file",
            Self::Record => "record",
            Self::Customer => "customer",
        }
    }

    fn from_noun(noun: &str) -> Option<Self> {
        [
            Self::Deposit,
            Self::Job,
            Self::File,
            Self::Record,
            Self::Customer,
        ]
        .into_iter()
        .find(|k| k.noun() == noun)
    }
}

fn hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when `raw` has the shape of a `kind` id. The one check every route's ids go through.
pub fn valid(kind: IdKind, raw: &str) -> bool {
    match kind {
        IdKind::Deposit | IdKind::File => hex32(raw),
        IdKind::Job => hex32(
            fom_core::jobs::QBO_PREFIXES
                .iter()
                .find_map(|p| raw.strip_prefix(p))
                .unwrap_or(raw),
        ),
        IdKind::Customer => fom_core::statements::settings::is_customer_id(raw),
        IdKind::Record => uuid::Uuid::try_parse(raw).is_ok_and(|u| {
            u.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                == raw
        }),
    }
}

/// What a path that failed the check names, from the deserializer's message (the path
/// extractor's error keeps nothing else).
pub fn kind_in_message(message: &str) -> Option<IdKind> {
    let noun = message.strip_prefix(MALFORMED)?;
    IdKind::from_noun(noun.split_whitespace().next()?)
}

const MALFORMED: &str = "malformed id: ";

macro_rules! id_type {
    ($name:ident, $kind:expr) => {
        /// An id checked by [`valid`] on the way in.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                if valid($kind, &raw) {
                    Ok(Self(raw))
                } else {
                    Err(serde::de::Error::custom(format_args!(
                        "{MALFORMED}{}",
                        $kind.noun()
                    )))
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(DepositId, IdKind::Deposit);
id_type!(JobId, IdKind::Job);
id_type!(FileId, IdKind::File);
id_type!(RecordId, IdKind::Record);
id_type!(CustomerId, IdKind::Customer);

impl RecordId {
    pub fn uuid(&self) -> uuid::Uuid {
        // Checked on the way in: it parses.
        uuid::Uuid::try_parse(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let hex = "0123456789abcdef0123456789abcdef";
        for kind in [IdKind::Deposit, IdKind::File, IdKind::Job] {
            assert!(valid(kind, hex), "{kind:?}");
            for bad in [
                "",
                "..",
                &hex[1..],
                &format!("{hex}:result"),
                &hex.to_uppercase(),
                &format!("{}g", &hex[1..]),
            ] {
                assert!(!valid(kind, bad), "{kind:?} {bad}");
            }
        }
        assert!(valid(IdKind::Job, &format!("send-{hex}")));
        assert!(!valid(IdKind::Deposit, &format!("send-{hex}")));
        assert!(!valid(IdKind::Job, "send-"));
        let record = uuid::Uuid::new_v4();
        assert!(valid(IdKind::Record, &record.to_string()));
        for bad in [
            record.simple().to_string(),
            record.to_string().to_uppercase(),
            format!("{{{record}}}"),
            format!("urn:uuid:{record}"),
            format!("{record}:x"),
        ] {
            assert!(!valid(IdKind::Record, &bad), "{bad}");
        }
    }

    #[test]
    fn generated_ids_pass() {
        assert!(valid(
            IdKind::Deposit,
            &uuid::Uuid::new_v4().simple().to_string()
        ));
        let send = format!(
            "{}{}",
            fom_core::jobs::send_all::ID_PREFIX,
            uuid::Uuid::new_v4().simple()
        );
        assert!(valid(IdKind::Job, &send));
        let bank = format!(
            "{}{}",
            fom_core::jobs::bank::ID_PREFIX,
            uuid::Uuid::new_v4().simple()
        );
        assert!(valid(IdKind::Job, &bank));
        assert!(!valid(IdKind::Job, "bank-nothex"));
    }

    /// Every route takes its path ids through these types: a `String` path parameter would skip
    /// the check (the module name of `/static/js/{name}`, matched against a fixed list, is the
    /// one exception).
    #[test]
    fn no_route_takes_a_raw_string_id() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let raw = line.contains("web::Path<String>") || line.contains("web::Path<(String");
                let allowed =
                    line.contains("name: web::Path<String>") || line.contains("\"web::Path<");
                assert!(!raw || allowed, "{}: {line}", path.display());
            }
        }
    }

    #[test]
    fn a_malformed_path_id_names_its_kind() {
        let err = serde_json::from_str::<DepositId>("\"x:y\"").unwrap_err();
        assert_eq!(kind_in_message(&err.to_string()), Some(IdKind::Deposit));
        let err = serde_json::from_str::<RecordId>("\"nope\"").unwrap_err();
        assert_eq!(kind_in_message(&err.to_string()), Some(IdKind::Record));
        assert_eq!(kind_in_message("something else"), None);
    }
}
