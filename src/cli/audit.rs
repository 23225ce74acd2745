//! `chops audit`: the audit log of actions, newest first, each with the statement it ran; with
//! `--verify`, a check of the log's hash chain (see `store::audit`).

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
    /// Check the log's hash chain instead: exit 0 "N rows, chain intact", else 2 and the first
    /// row that does not verify.
    #[arg(long)]
    pub verify: bool,
}

pub async fn run(loaded: &Loaded, args: AuditArgs) -> Result<i32, UserError> {
    let store = Store::open(&loaded.store_path())?;
    if args.verify {
        return verify(&store).await;
    }
    let rows = store
        .audit_rows(args.cluster.as_deref(), args.limit as usize)
        .await?;
    print!("{}", render::terminal::audit(&rows));
    Ok(0)
}

/// `chops audit --verify`: 0 and "N rows, chain intact", or 2 and the first row that does not
/// verify.
async fn verify(store: &Store) -> Result<i32, UserError> {
    match store.verify_audit().await? {
        Ok(intact) => {
            println!("{intact}");
            Ok(0)
        }
        Err(broken) => {
            println!("audit chain broken: {broken}");
            Ok(2)
        }
    }
}
