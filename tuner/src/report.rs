//! The one renderer: every command builds a report value, and this prints it as text or as JSON
//! (`--json`) from that same value, so the two never disagree.

use anyhow::bail;
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
        bail!(
            "refusing to {what} without confirmation: stdin is not a terminal. Re-run with --yes \
             (or --dry-run to only see what would change)"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
