//! placeholder replaced below
use std::path::Path;
#[derive(clap::Args, Debug)]
pub struct Args {}
pub fn run(_root: &Path, _args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("softirq is not built yet")
}
