//! `corestream-tune profile`: print the effective profile as the file it becomes on disk.

use crate::plan::ProfileArgs;
use crate::profile;
use anyhow::bail;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub p: ProfileArgs,
    /// What to print.
    #[arg(long, value_enum, default_value = "sysctl-d")]
    pub format: ShowFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ShowFormat {
    /// The sysctl.d file (as sysctl.d/60-corestream.conf in the repository).
    SysctlD,
    /// The limits.d file (as limits.d/90-corestream.conf in the repository).
    LimitsD,
    /// The systemd drop-in with LimitNOFILE=.
    Dropin,
}

/// `corestream-tune profile`: print the effective profile as a sysctl.d / limits.d / drop-in file.
pub fn run(_root: &Path, a: Args) -> anyhow::Result<u8> {
    let prof = profile::load_for_cli(a.p.profile.as_deref())?;
    let text = match a.format {
        ShowFormat::SysctlD => profile::render_sysctl_d(&prof.name, &prof.sysctls, &[]),
        ShowFormat::LimitsD | ShowFormat::Dropin => {
            let Some((n, reason)) = &prof.nofile else {
                bail!("profile {} sets no nofile", prof.name);
            };
            if matches!(a.format, ShowFormat::LimitsD) {
                profile::render_limits_d(*n, reason)
            } else {
                profile::render_systemd_dropin(*n)
            }
        }
    };
    print!("{text}");
    Ok(0)
}
