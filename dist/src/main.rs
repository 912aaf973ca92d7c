//! `corestream-dist OUTDIR`: writes what the Debian package ships beside the two binaries,
//! generated from the same clap definitions as `--help` so it cannot drift from it:
//!
//! - man pages: `corestream(8)`, `corestream-tune(8)` and one page per subcommand
//!   (`corestream-tune-apply(8)`, ...), found by walking the clap `Command` tree;
//! - shell completions for bash, zsh and fish, for both commands;
//! - `/etc/default/corestream`: every server option that reads a `CORESTREAM_*` variable,
//!   commented out, with its help text and default.
//!
//! Files land under OUTDIR at their installed paths (`OUTDIR/usr/share/man/man8/...`), so the
//! package's asset list names directories, not files: a new subcommand needs no edit there.
//! `packaging/build-deb.sh` runs this before `cargo deb`. A separate tool rather than a build
//! script: a build script of `corestream` cannot use the `corestream` library it belongs to,
//! and packaging work should not run on every developer build.

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const MAN_DIR: &str = "usr/share/man/man8";
/// Where Debian's bash-completion, zsh and fish look for completions shipped by packages.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "usr/share/bash-completion/completions"),
    (Shell::Zsh, "usr/share/zsh/vendor-completions"),
    (Shell::Fish, "usr/share/fish/vendor_completions.d"),
];
const DEFAULT_FILE: &str = "etc/default/corestream";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        corestream_common::say!("usage: corestream-dist OUTDIR   (writes man pages, completions and etc/default/corestream beneath OUTDIR)");
        return ExitCode::from(2);
    };
    match run(Path::new(out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            corestream_common::say!("corestream-dist: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The commands the package ships, as their binaries parse them.
fn commands() -> Vec<Command> {
    vec![
        corestream::config::Cli::command(),
        corestream_tune::cli::Cli::command(),
    ]
}

fn run(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for cmd in commands() {
        written.extend(man_pages(cmd.clone(), &out.join(MAN_DIR))?);
        written.extend(completions(cmd, out)?);
    }
    let default = out.join(DEFAULT_FILE);
    write(
        &default,
        default_file(corestream::config::Cli::command()).as_bytes(),
    )?;
    written.push(default);
    Ok(written)
}

fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// One page for the command and one for every (non-hidden) subcommand, recursively.
fn man_pages(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    // `help` as a subcommand is clap's, not ours: every page documents --help already.
    let mut cmd = cmd.disable_help_subcommand(true);
    // Fills in the subcommands' display names (`corestream-tune-apply`) and bin names
    // (`corestream-tune apply`) that the pages use.
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, None, dir, &mut written)?;
    Ok(written)
}

fn page(
    cmd: &Command,
    parent: Option<&str>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let subs: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("Corestream")
        .date(page_date())
        // The version of the package, not of a subcommand (those have none of their own).
        .source(format!("Corestream {}", env!("CARGO_PKG_VERSION")));
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    // SEE ALSO: the parent page and each subcommand's page, so `man corestream-tune` leads to
    // every one of them.
    let mut refs: Vec<String> = parent.map(str::to_string).into_iter().collect();
    refs.extend(
        subs.iter()
            .map(|s| s.get_display_name().unwrap_or(s.get_name()).to_string()),
    );
    if !refs.is_empty() {
        let list: Vec<String> = refs
            .iter()
            .map(|r| format!("\\fB{}\\fR(8)", r.replace('-', "\\-")))
            .collect();
        writeln!(buf, ".SH \"SEE ALSO\"\n{}", list.join(",\n"))?;
    }
    let path = dir.join(format!("{name}.8"));
    write(&path, &buf)?;
    written.push(path);
    for s in subs {
        page(s, Some(&name), dir, written)?;
    }
    Ok(())
}

/// The pages' date: SOURCE_DATE_EPOCH when set (build-deb.sh sets the last commit's time, so
/// the same commit builds the same pages), else today.
fn page_date() -> String {
    let civil = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(secs) => corestream_common::date::Civil::from_unix_secs(secs),
        None => corestream_common::date::Civil::from_system_time(std::time::SystemTime::now()),
    };
    civil.rfc3339_millis()[..10].to_string()
}

fn completions(mut cmd: Command, out: &Path) -> io::Result<Vec<PathBuf>> {
    let bin = cmd.get_name().to_string();
    let mut written = Vec::new();
    for (shell, dir) in COMPLETIONS {
        // The names each shell loads on demand for the command `bin`.
        let file = match shell {
            Shell::Zsh => format!("_{bin}"),
            Shell::Fish => format!("{bin}.fish"),
            _ => bin.clone(),
        };
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
        let path = out.join(dir).join(file);
        write(&path, &buf)?;
        written.push(path);
    }
    Ok(written)
}

/// `/etc/default/corestream`: each option with an environment variable, commented out.
fn default_file(mut cmd: Command) -> String {
    cmd.build();
    let mut o = String::new();
    o.push_str(
        "# Settings for corestream.service and corestream@.service (read as EnvironmentFile=).\n\
         # Every CORESTREAM_* variable is the command-line option of the same name; `man corestream`\n\
         # and `corestream --help` describe them. Uncomment a line to change it, then\n\
         # `systemctl restart corestream` (or each corestream@PORT in turn).\n\
         #\n\
         # Values here override the unit's Environment= lines (`systemctl cat corestream`), which set\n\
         # the media root, the viewers' address and the admin address. corestream@PORT.service passes\n\
         # its admin port on the command line, so CORESTREAM_ADMIN set here applies to corestream.service\n\
         # only.\n\
         # Generated from the clap definitions by corestream-dist (packaging/build-deb.sh).\n",
    );
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        if arg.is_hide_set() {
            continue;
        }
        o.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help, 94) {
            let _ = writeln!(o, "# {line}");
        }
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let _ = writeln!(o, "#{}={}", env.to_string_lossy(), default.join(","));
    }
    o
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand of every shipped command gets a page: walk the tree, don't list it.
    #[test]
    fn one_page_per_command_and_subcommand() {
        let dir = std::env::temp_dir().join(format!("corestream-dist-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let files = run(&dir).unwrap();
        let mut want = 0;
        for cmd in commands() {
            fn count(c: &Command) -> usize {
                1 + c
                    .get_subcommands()
                    .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                    .map(count)
                    .sum::<usize>()
            }
            want += count(&cmd);
        }
        let pages = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "8"));
        assert_eq!(pages.count(), want);
        let tune = fs::read_to_string(dir.join(MAN_DIR).join("corestream-tune.8")).unwrap();
        assert!(tune.contains(".SH \"SEE ALSO\""), "{tune}");
        let default = fs::read_to_string(dir.join(DEFAULT_FILE)).unwrap();
        // Every option that reads a variable is there, commented out.
        for arg in corestream::config::Cli::command().get_arguments() {
            if let Some(env) = arg.get_env() {
                let line = format!("\n#{}=", env.to_string_lossy());
                assert!(default.contains(&line), "{line:?} missing from\n{default}");
            }
        }
        // Every line is a comment or empty: installing the file changes nothing.
        assert!(default.lines().all(|l| l.is_empty() || l.starts_with('#')));
        fs::remove_dir_all(&dir).unwrap();
    }
}
