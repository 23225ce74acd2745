//! Hostile names against the real engine: `sql::ident` / `sql::string` round-trip any bytes
//! (property tests, thousands of cases), and a cluster full of hostile database and table names
//! gets a card whose every statement is one line, shows no raw control character, and — sent to
//! the engine exactly as printed — hits exactly the named object.

use crate::common::*;

use chops::domain::{sql, text};
use proptest::prelude::*;

/// Upper-case hex of `bytes`, as ClickHouse's `hex()` prints it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Names of every kind: raw bytes, any Unicode, and the characters that break things.
fn names(min: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), min..24),
        "\\PC{0,12}".prop_map(|s: String| s.into_bytes()),
        ".{0,12}".prop_map(|s: String| s.into_bytes()),
        prop::collection::vec(
            prop::sample::select(b"`'\"\\\n\t\r\0;-@#*_~|<>[]()\x1b\x7f\xff\xc3".to_vec()),
            min..16
        ),
    ]
    .prop_filter("long enough", move |b| b.len() >= min)
}

/// `s` with every `YYYYmmddTHHMMSS` stamp (in backup names) replaced by `<time>`.
fn untimed(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let stamp = i + 15 <= b.len()
            && b[i..i + 8].iter().all(u8::is_ascii_digit)
            && b[i + 8] == b'T'
            && b[i + 9..i + 15].iter().all(u8::is_ascii_digit);
        if stamp {
            out.push_str("<time>");
            i += 15;
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The JSON card and the terminal card of `config`, and every statement of the card as
/// (SQL, replica): each one line, and printed on the terminal exactly as in JSON.
fn printed_statements(config: &str) -> (serde_json::Value, Output, Vec<(String, String)>) {
    let card = chops(&["--config", config, "check", "backup", "--json"], &[]).json();
    let term = chops(
        &["--config", config, "check", "backup", "--color", "never"],
        &[],
    );
    let statements: Vec<(String, String)> = card["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let on = s["run_on"].as_str().unwrap_or("").to_string();
            Some((s["sql"].as_str()?.to_string(), on))
        })
        .collect();
    for (stmt, _) in &statements {
        one_line(stmt);
        // Two runs of chops: a backup name's time may have moved on by a second between them.
        assert!(
            term.stdout
                .lines()
                .any(|l| untimed(l.trim()) == untimed(stmt)),
            "{stmt} not printed whole on the terminal:\n{}",
            term.stdout
        );
    }
    (card, term, statements)
}

fn one_line(sql: &str) {
    assert!(
        !sql.chars().any(|c| c.is_control()),
        "not one clean line: {sql:?}"
    );
    assert!(!sql.contains("```") && !sql.contains('@'), "{sql:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// `SELECT <string literal>` returns exactly the bytes it was built from.
    #[test]
    fn string_literals_round_trip(bytes in names(0)) {
        let url = &shared().urls[0];
        let lit = sql::string(&text::from_bytes(&bytes));
        one_line(&lit);
        let got = must(url, &format!("SELECT hex({lit})"));
        prop_assert_eq!(got.trim(), hex(&bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// `CREATE TABLE <ident>` makes a table whose name is exactly those bytes; `DROP` finds it.
    #[test]
    fn identifiers_round_trip(bytes in names(1)) {
        let url = &shared().urls[1];
        must(url, "CREATE DATABASE IF NOT EXISTS prop");
        let name = text::from_bytes(&bytes);
        let table = sql::table("prop", &name);
        one_line(&table);
        must(url, &format!("CREATE TABLE {table} (x UInt8) ENGINE = Memory"));
        let listed = must(url, "SELECT hex(name) FROM system.tables WHERE database = 'prop'");
        must(url, &format!("DROP TABLE {table}"));
        prop_assert_eq!(listed.trim(), hex(&bytes));
    }
}

/// Database and table names a hostile tester would pick.
fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"nl\n  9. Cluster is ready: retry the backup\n       DROP DATABASE important".to_vec(),
        b"esc\x1b[2J\x1b[31mred".to_vec(),
        b"back`tick".to_vec(),
        b"fence```sql".to_vec(),
        b"quo'te\"dq".to_vec(),
        b"back\\slash".to_vec(),
        b"semi; DROP TABLE x -- c".to_vec(),
        b"@everyone <@123>".to_vec(),
        b"bad\xff\xfeutf8".to_vec(),
    ]
}

#[test]
fn hostile_names_give_exact_one_line_statements() {
    let c = LocalCluster::start(3).expect("cluster");
    let names: Vec<String> = hostile_names()
        .iter()
        .map(|b| text::from_bytes(b))
        .collect();
    let db = |i: usize| sql::ident(&names[i]);
    for (i, _) in names.iter().enumerate() {
        must(&c.urls[2], &format!("CREATE DATABASE {}", db(i)));
        must(
            &c.urls[2],
            &format!(
                "CREATE TABLE {}.t (k UInt64, v UInt64) ENGINE = MergeTree ORDER BY k",
                db(i)
            ),
        );
    }
    // A read-only replicated table (restart step) on r1 and a failing mutation (kill step) on r2.
    let (rdb, rt) = (&names[0], &names[7]);
    must(&c.urls[0], &format!("CREATE DATABASE {}", sql::ident(rdb)));
    must(
        &c.urls[0],
        &format!(
            "CREATE TABLE {} (id UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/r/t', '{{replica}}') ORDER BY id",
            sql::table(rdb, rt)
        ),
    );
    let (mdb, mt) = (&names[8], &names[2]);
    must(&c.urls[1], &format!("CREATE DATABASE {}", sql::ident(mdb)));
    must(
        &c.urls[1],
        &format!(
            "CREATE TABLE {} (k UInt64, v UInt64) ENGINE = MergeTree ORDER BY k",
            sql::table(mdb, mt)
        ),
    );
    must(
        &c.urls[1],
        &format!(
            "INSERT INTO {} SELECT number, number FROM numbers(10)",
            sql::table(mdb, mt)
        ),
    );
    let _ = sql(
        &c.urls[1],
        &format!(
            "ALTER TABLE {} UPDATE v = throwIf(v >= 0, 'boom') WHERE 1",
            sql::table(mdb, mt)
        ),
    );

    let config = c.config_path.to_str().unwrap();
    let (card, term, statements) = printed_statements(config);
    // The terminal card: no raw control character at all (newlines end chops' own lines).
    assert!(
        !term
            .raw
            .iter()
            .any(|&b| b == 0x1b || b == 0x7f || (b < 0x20 && b != b'\n')),
        "raw control character in:\n{}",
        term.stdout
    );
    assert!(
        !term.stdout.contains("\n  9. Cluster is ready"),
        "a fake step:\n{}",
        term.stdout
    );

    let url_of = |r: &str| c.urls[r.trim_start_matches('r').parse::<usize>().unwrap() - 1].clone();

    // SYSTEM RESTART REPLICA on r1 names the read-only table: the engine finds it.
    let restart = format!("SYSTEM RESTART REPLICA {}", sql::table(rdb, rt));
    let (stmt, on) = statements
        .iter()
        .find(|(s, _)| s.starts_with("SYSTEM RESTART REPLICA"))
        .unwrap_or_else(|| panic!("no restart step: {card:#}"));
    assert_eq!((stmt.as_str(), on.as_str()), (restart.as_str(), "r1"));
    must(&url_of(on), stmt);

    // KILL MUTATION on r2 names the failing mutation: the engine kills exactly that one.
    let (stmt, on) = statements
        .iter()
        .find(|(s, _)| s.starts_with("KILL MUTATION"))
        .unwrap_or_else(|| panic!("no kill step: {card:#}"));
    assert_eq!(*on, "r2");
    let killed = must(&url_of(on), &format!("{stmt} FORMAT JSONEachRow"));
    let rows: Vec<serde_json::Value> = killed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{killed}");
    let left = must(
        &url_of(on),
        &format!(
            "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND NOT is_done",
            sql::string(mdb),
            sql::string(mt)
        ),
    );
    assert_eq!(left.trim(), "0", "the mutation is gone");

    // With Keeper down the card suggests per-replica backups: r3's lists every hostile database,
    // and the engine backs them all up.
    c.stop_keeper();
    let (card, _, statements) = printed_statements(config);
    let (stmt, on) = statements
        .iter()
        .find(|(s, on)| s.starts_with("BACKUP DATABASE") && *on == "r3")
        .unwrap_or_else(|| panic!("no backup step for r3: {card:#}"));
    for i in 0..names.len() {
        assert!(stmt.contains(&format!("DATABASE {}", db(i))), "{stmt}");
    }
    let started = must(&url_of(on), &format!("{stmt} FORMAT TSV"));
    let id = started.split('\t').next().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..100 {
        status = must(
            &url_of(on),
            &format!(
                "SELECT status FROM system.backups WHERE id = {}",
                sql::string(&id)
            ),
        );
        if status.trim() != "CREATING_BACKUP" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status.trim(), "BACKUP_CREATED", "{stmt}");
    let listed = must(
        &url_of(on),
        &format!(
            "SELECT count() FROM system.backups WHERE id = {} AND num_files > 0",
            sql::string(&id)
        ),
    );
    assert_eq!(listed.trim(), "1");

    // The embed: no live mention, and every code fence is one of the renderer's own.
    let cfg = chops::config::Loaded::load(std::path::Path::new(config)).unwrap();
    let target = cfg.target(None, &|_| None).unwrap();
    let rt_ = tokio::runtime::Runtime::new().unwrap();
    let card = rt_.block_on(async {
        let cl = chops::checks::Cluster::connect(&target).await.unwrap();
        cl.check(chops::domain::Scope::Full).await
    });
    let e = chops::discord::render::embed(&card);
    let all: Vec<&String> = std::iter::once(&e.description)
        .chain(e.fields.iter().flat_map(|(n, v)| [n, v]))
        .collect();
    for t in all {
        assert!(
            !t.contains("@everyone") && !t.contains("<@1"),
            "mention in {t}"
        );
        let fences = t.matches("```").count();
        assert_eq!(
            fences,
            2 * t.matches("```sql\n").count(),
            "stray fence in {t}"
        );
        for block in t.split("```sql\n").skip(1) {
            let code = block.split("\n```").next().unwrap();
            one_line(code);
        }
    }
}
