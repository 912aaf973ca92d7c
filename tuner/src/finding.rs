//! What a rule returns: a [`Finding`] with its severity, the numbers that triggered it
//! ([`Evidence`]), the cause and the exact fix ([`Remedy`]).

use crate::paths;
use crate::thresholds::Rule;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Advice: a tuning opportunity, never a fault (exit 0).
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn exit_code(worst: Option<Severity>) -> u8 {
        match worst {
            None | Some(Severity::Info) => 0,
            Some(Severity::Warning) => 1,
            Some(Severity::Critical) => 2,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Severity::Info => "ADVICE",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A verdict in the monitoring-plugins convention, and its exit status: 0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN. Findings outrank blindness (a critical finding is critical even if
/// some other probe could not be read); with no finding, any probe a rule needed that could
/// not be read makes it UNKNOWN: blind is not healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn of(worst: Option<Severity>, blind: bool) -> Status {
        match worst {
            Some(Severity::Critical) => Status::Critical,
            Some(Severity::Warning) => Status::Warning,
            None | Some(Severity::Info) if blind => Status::Unknown,
            None | Some(Severity::Info) => Status::Ok,
        }
    }
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// File (or interface) the number was read from.
    pub source: String,
    /// The value as text when it is a word (a qdisc, a list of ULPs); `value` is then 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

pub fn ev(name: impl Into<String>, value: f64, unit: &str, source: impl Into<String>) -> Evidence {
    Evidence {
        name: name.into(),
        value,
        unit: unit.into(),
        source: source.into(),
        text: None,
    }
}

/// Evidence whose value is a word.
pub fn ev_text(name: &str, text: &str, source: impl Into<String>) -> Evidence {
    Evidence {
        text: Some(text.to_string()),
        ..ev(name, 0.0, "", source)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemedyKind {
    /// `key = value` for a sysctl.d file, applied with `sysctl -w key=value`.
    Sysctl,
    /// A line for a systemd unit file.
    UnitFile,
    /// A line for a limits.d file (pam_limits: login sessions, not services).
    LimitsFile,
    /// A change to the application.
    Code,
    /// A command to run.
    Command,
}

impl RemedyKind {
    pub fn label(self) -> &'static str {
        match self {
            RemedyKind::Sysctl => "sysctl",
            RemedyKind::UnitFile => "unit-file",
            RemedyKind::LimitsFile => "limits",
            RemedyKind::Code => "code",
            RemedyKind::Command => "command",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remedy {
    pub kind: RemedyKind,
    pub text: String,
    /// File the line belongs in, when there is one.
    pub file: Option<String>,
    /// Why this cannot be done where the tool runs and must be done on the host (a global
    /// key seen from a child network namespace); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Remedy {
    pub fn sysctl(key: &str, value: impl std::fmt::Display) -> Remedy {
        Remedy {
            kind: RemedyKind::Sysctl,
            text: format!("{key} = {value}"),
            file: Some(paths::shown(paths::SYSCTL_D)),
            host: None,
        }
    }
    /// A line for the drop-in `apply --persist` writes for `unit`.
    pub fn unit(unit: &str, line: String) -> Remedy {
        Remedy {
            kind: RemedyKind::UnitFile,
            text: line,
            file: Some(paths::shown(&paths::dropin(unit))),
            host: None,
        }
    }
    /// A line for the limits.d file `apply --persist` writes (login sessions, pam_limits).
    pub fn limits_d(line: String) -> Remedy {
        Remedy {
            kind: RemedyKind::LimitsFile,
            text: line,
            file: Some(paths::shown(paths::LIMITS_D)),
            host: None,
        }
    }
    pub fn code(text: String) -> Remedy {
        Remedy {
            kind: RemedyKind::Code,
            text,
            file: None,
            host: None,
        }
    }
    pub fn command(text: String) -> Remedy {
        Remedy {
            kind: RemedyKind::Command,
            text,
            file: None,
            host: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// What the finding is about: `system`, `cpu1`, `listener 0.0.0.0:8080`, `pid 4242 (corestream)`.
    pub subject: String,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// The cause in one sentence.
    pub cause: String,
    pub remedy: Vec<Remedy>,
}

/// Numbers in text output: integers without decimals, the rest with two.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
