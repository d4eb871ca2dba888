//! Year-end donor statements: the acknowledgement letters donors need for their taxes, built
//! from the sales receipts in QuickBooks whatever way each gift got there. Settings and
//! exclusions ([`settings`]), gathering and writing ([`run`]), the letter's layout
//! ([`letter`]) and its PDF ([`pdf`]); the job is [`crate::jobs::statements`].

pub mod letter;
pub mod pdf;
pub mod run;
pub mod settings;

pub use run::{RunParams, LARGE_GIFT};
pub use settings::{StatementSettings, StatementStore};
