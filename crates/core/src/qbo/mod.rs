//! QuickBooks Online (CONTRACTS.md parts A-C): the query language with its escaping, and the
//! error envelope in both of its key cases. The client, connection and sync build on these.

pub mod fault;
pub mod query;
pub mod tokens;
