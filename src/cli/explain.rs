//! `chops explain`: classify one error text. Pure unless `--cluster` is given (then the config is
//! read and the full card run, with the text's evidence on it). Exit 3 for an empty text.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::UserError;
use crate::checks::Cluster;
use crate::config::{self, Loaded};
use crate::domain::explain::Explanation;
use crate::domain::Scope;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The error text, or `-` to read it from stdin.
    pub text: Option<String>,
    /// Print JSON: category, causes, code, code_name, host, meaning, next_steps.
    #[arg(long)]
    pub json: bool,
    /// Also run the full card on this cluster, with the text's evidence on it.
    #[arg(long)]
    pub cluster: Option<String>,
}

pub async fn run(config_flag: Option<PathBuf>, args: ExplainArgs) -> Result<i32, UserError> {
    let text = read_text(args.text.as_deref())?;
    if text.trim().is_empty() {
        return Err(UserError::Usage("the error text is empty".into()));
    }
    let e = crate::domain::explain::explain(&text);
    let cluster = args.cluster.as_deref();
    if args.json {
        let mut v = serde_json::to_value(&e).expect("an explanation serialises");
        if let Some(name) = cluster {
            v["card"] =
                serde_json::from_str(&render::json(&explain_card(config_flag, name, &e).await?))
                    .expect("a card is JSON");
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render::terminal::explanation(&e, color));
        if let Some(name) = cluster {
            let card = explain_card(config_flag, name, &e).await?;
            print!("\n{}", render::terminal::render(&card, color));
        }
    }
    Ok(0)
}

/// The text argument, or stdin for `-` (bounded: what explain reads, and a little more to know
/// it was longer).
fn read_text(arg: Option<&str>) -> Result<String, UserError> {
    use std::io::Read;
    match arg {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take((crate::domain::explain::MAX_TEXT + 1) as u64)
                .read_to_end(&mut buf)
                .map_err(|e| UserError::Usage(format!("cannot read stdin: {e}")))?;
            Ok(crate::domain::text::from_bytes(&buf))
        }
        Some(t) => Ok(t.to_string()),
        None => Err(UserError::Usage(
            "no error text: pass it as an argument, or `-` to read stdin".into(),
        )),
    }
}

async fn explain_card(
    config_flag: Option<PathBuf>,
    cluster: &str,
    e: &Explanation,
) -> Result<crate::domain::Card, UserError> {
    let loaded = Loaded::load(&config::resolve_path(config_flag))?;
    let target = loaded.target(Some(cluster), &config::process_env)?;
    let cl = Cluster::connect(&target).await?;
    Ok(cl
        .check_with(Scope::Full, vec![crate::domain::explain::finding(e)])
        .await)
}
