//! HTTP/1.1 for viewers, in the order a request goes through it: `parse` (request head),
//! `path` (target to a root-relative path), `mime` (type and caching kind), `cond` and
//! `range` (validators, conditionals, byte ranges), `respond` (route a request to a
//! `Response` value), `head` (the one encoder of response heads), with `status`, `date`
//! and `response` as the vocabulary they share.

pub mod body;
pub mod cond;
pub mod date;
pub mod encoded;
pub mod head;
pub mod mime;
pub mod parse;
pub mod path;
pub mod range;
pub mod respond;
pub mod response;
pub mod status;

pub use parse::{parse, trim, Limits, Method, Parse, Request, MAX_HEADERS};
pub use respond::process_bytes;
pub use response::{Body, Response};
pub use status::Status;
