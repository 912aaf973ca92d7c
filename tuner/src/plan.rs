//! `corestream-tune plan|apply|check|rollback` (placeholder until its issue lands).
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct PlanArgs {}
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {}
#[derive(clap::Args, Debug)]
pub struct CheckArgs {}
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {}

pub fn run_plan(_root: &Path, _a: PlanArgs) -> anyhow::Result<u8> {
    anyhow::bail!("plan is not built yet")
}
pub fn run_apply(_root: &Path, _a: ApplyArgs) -> anyhow::Result<u8> {
    anyhow::bail!("apply is not built yet")
}
pub fn run_check(_root: &Path, _a: CheckArgs) -> anyhow::Result<u8> {
    anyhow::bail!("check is not built yet")
}
pub fn run_rollback(_root: &Path, _a: RollbackArgs) -> anyhow::Result<u8> {
    anyhow::bail!("rollback is not built yet")
}
