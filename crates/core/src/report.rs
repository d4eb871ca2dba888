//! The deposit report: FoM's text layout and a CSV export of every field.
