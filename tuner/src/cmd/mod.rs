//! One module per command that changes or checks settings. Each builds a report value
//! ([`crate::report::Report`]) and hands it to the one renderer.

pub mod apply;
pub mod auto;
pub mod check;
pub mod plan;
pub mod profile;
pub mod rollback;
