//! Benchmark: `chops explain` on every text of the real-error corpus — agreement on each half
//! of the corpus (the split of `tests/corpus.rs`: batch 1 = old; batch 2 by FNV-1a of the text,
//! even = tuning, odd = held-out), the pure classification time per text (median of 200 runs per
//! text; p50 and slowest reported, goal ≤ 50 µs) and the whole `chops explain` process (wall time,
//! which includes starting it). Writes target/chops-explain-bench.md.

use std::time::Instant;

use chops::domain::explain::explain;
use chops::domain::text::fnv1a;

struct Entry {
    text: String,
    accepted: Vec<String>,
    half: &'static str,
}

fn corpus() -> Vec<Entry> {
    let corpus =
        std::fs::read_to_string(testkit::repo_root().join("tests/fixtures/real-errors.jsonl"))
            .expect("the corpus");
    corpus
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = v["text"].as_str().unwrap().to_string();
            let mut accepted = vec![v["category"].as_str().unwrap().to_string()];
            for a in v["also"].as_array().into_iter().flatten() {
                accepted.push(a.as_str().unwrap().to_string());
            }
            let half = match (v["batch"].as_u64(), fnv1a(text.bytes()) % 2) {
                (Some(1), _) => "old",
                (_, 0) => "tuning",
                _ => "held-out",
            };
            Entry {
                text,
                accepted,
                half,
            }
        })
        .collect()
}

fn median_us(text: &str) -> f64 {
    let mut runs: Vec<f64> = (0..200)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(explain(std::hint::black_box(text)));
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

fn main() {
    let entries = corpus();
    let mut report = String::from("| corpus half | texts | agree |\n|---|---|---|\n");
    for half in ["old", "tuning", "held-out"] {
        let set: Vec<&Entry> = entries.iter().filter(|e| e.half == half).collect();
        let agree = set
            .iter()
            .filter(|e| {
                e.accepted
                    .iter()
                    .any(|a| a == explain(&e.text).category.name())
            })
            .count();
        report.push_str(&format!(
            "| {half} | {} | {agree} ({:.1} %) |\n",
            set.len(),
            100.0 * agree as f64 / set.len().max(1) as f64
        ));
    }
    let mut per_text: Vec<f64> = entries.iter().map(|e| median_us(&e.text)).collect();
    per_text.sort_by(|a, b| a.total_cmp(b));
    let mut wall: Vec<f64> = entries
        .iter()
        .map(|e| {
            let s = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_chops"))
                .args(["explain", "--", &e.text])
                .output()
                .expect("run chops explain");
            assert!(out.status.success());
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    wall.sort_by(|a, b| a.total_cmp(b));
    report.push_str(&format!(
        "\n| `chops explain` on {} corpus texts | p50 | max |\n|---|---|---|\n\
         | classification (median of 200 runs per text) | {:.1} µs | {:.1} µs |\n\
         | whole process, wall time | {:.1} ms | {:.1} ms |\n",
        entries.len(),
        per_text[per_text.len() / 2],
        per_text[per_text.len() - 1],
        wall[wall.len() / 2],
        wall[wall.len() - 1],
    ));
    print!("{report}");
    let _ = std::fs::write(
        testkit::repo_root().join("target/chops-explain-bench.md"),
        &report,
    );
}
