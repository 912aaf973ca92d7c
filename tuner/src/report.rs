//! The one renderer: every command builds a report value, and this prints it as text or as JSON
//! (`--json`) from that same value, so the two never disagree.

use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};

/// A command's result: serialisable for `--json`, with a text form and an exit status.
pub trait Report: Serialize {
    /// The text a person reads.
    fn text(&self) -> String;
    /// The process exit status this report stands for.
    fn exit_code(&self) -> u8;
}

/// Print `r` as text or pretty JSON and return its exit status. A reader that went away
/// (`| head`) is not an error.
pub fn emit(r: &impl Report, json: bool) -> anyhow::Result<u8> {
    let text = if json {
        let mut t = serde_json::to_string_pretty(r)?;
        t.push('\n');
        t
    } else {
        r.text()
    };
    print_text(&text)?;
    Ok(r.exit_code())
}

/// Write text to stdout; a closed pipe ends output quietly.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Columns padded to the widest cell; the last column is not padded.
pub fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Ask on the terminal, or refuse when nobody can answer.
pub fn confirm(question: &str, what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return usage(format!(
            "refusing to {what} without confirmation: stdin is not a terminal. Re-run with --yes \
             (or --dry-run to only see what would change)"
        ));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Exit statuses of every command (documented in `--help` and docs/sre-*.md). 0-3 follow the
/// monitoring-plugins convention so `diagnose` and `check` can run from Nagios, Icinga or a
/// Prometheus blackbox; a usage error is 64 (EX_USAGE from sysexits.h), never 2, so a typo in
/// a check's arguments does not page anyone as CRITICAL.
pub mod exit {
    pub const OK: u8 = 0;
    /// A warning finding, a drift, or something asked for that was not done.
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    /// Could not tell: a probe could not be read, or the tool failed.
    pub const UNKNOWN: u8 = 3;
    /// Bad command line or arguments (including clap's own errors).
    pub const USAGE: u8 = 64;
}

/// An error in what the user asked for (bad value, missing --yes, a pid that does not exist):
/// exits [`exit::USAGE`] instead of [`exit::UNKNOWN`].
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `bail!` for usage errors.
pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(Usage(msg.into()).into())
}

/// The exit status of an error: usage errors anywhere in its chain are 64, the rest 3.
pub fn error_exit(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Usage>()) {
        exit::USAGE
    } else {
        exit::UNKNOWN
    }
}
