//! Benchmark: `chops explain` on every text of the real-error corpus — the pure classification
//! (median of 200 runs per text; the slowest text reported) and the whole `chops explain` process
//! (wall time, which includes starting it). Writes target/chops-explain-bench.md.

use std::time::Instant;

fn main() {
    let corpus =
        std::fs::read_to_string(testkit::repo_root().join("tests/fixtures/real-errors.jsonl"))
            .expect("the corpus");
    let texts: Vec<String> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect();
    let mut per_text: Vec<f64> = texts
        .iter()
        .map(|t| {
            let mut runs: Vec<f64> = (0..200)
                .map(|_| {
                    let s = Instant::now();
                    std::hint::black_box(chops::domain::explain::explain(std::hint::black_box(t)));
                    s.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            runs.sort_by(|a, b| a.total_cmp(b));
            runs[runs.len() / 2]
        })
        .collect();
    per_text.sort_by(|a, b| a.total_cmp(b));
    let mut wall: Vec<f64> = texts
        .iter()
        .map(|t| {
            let s = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_chops"))
                .args(["explain", t])
                .output()
                .expect("run chops explain");
            assert!(out.status.success());
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    wall.sort_by(|a, b| a.total_cmp(b));
    let report = format!(
        "| `chops explain` on {} corpus texts | p50 | max |\n|---|---|---|\n\
         | classification (median of 200 runs per text) | {:.1} µs | {:.1} µs |\n\
         | whole process, wall time | {:.1} ms | {:.1} ms |\n",
        texts.len(),
        per_text[per_text.len() / 2],
        per_text[per_text.len() - 1],
        wall[wall.len() / 2],
        wall[wall.len() - 1],
    );
    print!("{report}");
    let _ = std::fs::write(
        testkit::repo_root().join("target/chops-explain-bench.md"),
        &report,
    );
}
