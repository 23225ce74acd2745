//! `chops audit`: the audit log of actions, newest first.

use super::UserError;
use crate::config::Loaded;
use crate::render;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Rows to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
}

pub async fn run(loaded: &Loaded, args: AuditArgs) -> Result<i32, UserError> {
    let store = Store::open(&loaded.store_path())?;
    let rows = store
        .audit_rows(args.cluster.as_deref(), args.limit as usize)
        .await?;
    print!("{}", render::terminal::audit(&rows));
    Ok(0)
}
