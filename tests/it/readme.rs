//! The README against what it describes: its `alertmanager.yml` is the shipped (amtool-checked)
//! file, its table of commands names every slash command, every subcommand and their options and
//! nothing else, its set-up test command is the one CI runs, and its links lead somewhere.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

/// The bodies of the fenced blocks of `lang` (```lang … ```), in order.
fn fenced(text: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            Some(body) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The text of the section under `heading` (up to the next heading of the same or a higher level).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no heading {heading:?}"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let body = &text[start + heading.len() + 2..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = body[i + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level && body[i + 1 + hashes..].starts_with(' ')
        })
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// Words that follow `prefix` inside inline code (`` `prefix word …` ``) in `text`.
fn code_words(text: &str, prefix: &str) -> BTreeSet<String> {
    let pattern = format!("`{prefix}");
    text.match_indices(&pattern)
        .map(|(i, _)| {
            text[i + pattern.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

const COMMANDS: &str = "### Commands and who may use them";

#[test]
fn alertmanager_example_is_the_shipped_file() {
    let file = read("deploy/prometheus/alertmanager.yml");
    assert!(
        fenced(&readme(), "yaml").contains(&file),
        "README's alertmanager.yml example differs from deploy/prometheus/alertmanager.yml \
         (the file amtool checks): copy the file into the README's ```yaml block"
    );
    assert!(
        file.contains("\nroute:\n"),
        "the example must route somewhere"
    );
}

#[test]
fn command_table_names_every_slash_command_and_option() {
    let readme = readme();
    let table = section(&readme, COMMANDS);
    let mut names = BTreeSet::new();
    for c in chops::discord::commands() {
        if let Some(menu) = &c.context_menu_name {
            assert!(
                table.contains(&format!("*Apps → {menu}*")),
                "{menu} missing"
            );
            continue;
        }
        for sub in &c.subcommands {
            let full = format!("/{} {}", c.name, sub.name);
            assert!(table.contains(&format!("`{full}")), "{full} missing");
        }
        for p in &c.parameters {
            assert!(
                table.contains(&*p.name),
                "/{}: option {} missing",
                c.name,
                p.name
            );
        }
        names.insert(c.name.to_string());
    }
    let shown = code_words(table, "/");
    assert_eq!(
        shown, names,
        "slash commands in README's table vs registered"
    );
}

#[test]
fn command_table_names_every_subcommand_and_flag() {
    let readme = readme();
    let table = section(&readme, COMMANDS);
    let cli = chops::cli::Cli::command();
    let mut names = BTreeSet::new();
    for sub in cli.get_subcommands() {
        names.insert(sub.get_name().to_string());
        let leaves: Vec<_> = if sub.has_subcommands() {
            sub.get_subcommands().collect()
        } else {
            vec![sub]
        };
        for leaf in leaves {
            for arg in leaf.get_arguments().filter_map(|a| a.get_long()) {
                if arg != "config" {
                    assert!(
                        table.contains(&format!("--{arg}")),
                        "{}: --{arg} missing",
                        leaf.get_name()
                    );
                }
            }
        }
    }
    let shown = code_words(table, "chops ");
    assert_eq!(shown, names, "subcommands in README's table vs the CLI");
}

#[test]
fn set_up_runs_what_ci_runs() {
    let readme = readme();
    let block = fenced(section(&readme, "## Set up"), "sh").remove(0);
    let commands: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(commands.len(), 2, "two set-up commands: {commands:?}");
    let test = commands[1].split_whitespace().next().unwrap_or_default();
    assert!(
        read(".ci/run")
            .lines()
            .any(|l| l.trim() == format!("bash {test}")),
        "CI (.ci/run) does not run README's test command {test}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn relative_links_lead_somewhere() {
    let readme = readme();
    let links: Vec<&str> = readme
        .match_indices("](")
        .filter_map(|(i, _)| readme[i + 2..].split(')').next())
        .filter(|l| !l.contains("://"))
        .collect();
    assert!(!links.is_empty());
    for link in links {
        let (path, fragment) = link.split_once('#').unwrap_or((link, ""));
        assert!(root().join(path).exists(), "README links to missing {path}");
        if !fragment.is_empty() {
            let target = read(path);
            let anchors: BTreeSet<String> = target
                .lines()
                .filter(|l| l.starts_with('#'))
                .map(anchor)
                .collect();
            assert!(
                anchors.contains(fragment),
                "{path} has no heading #{fragment}"
            );
        }
    }
}
