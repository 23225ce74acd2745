//! The classifier against real error texts: `tests/fixtures/real-errors.jsonl` (fields in
//! `tests/fixtures/real-errors.README.md`), each with the category a person chose. A text agrees
//! when the classified category is its `category` or one of its `also`.
//!
//! The split, fixed before the second classifier's patterns were written: batch 1 (the corpus the
//! first classifier was written against) must stay at 100 %; batch 2 is split by the FNV-1a digest
//! of the text — even: tuning, odd: held-out. Tuning misses are printed; for the held-out half only
//! the score is, so patterns are never written from its misses.

use chops::domain::classify::{classify, ErrorKind};
use chops::domain::text::fnv1a;

const CORPUS: &str = include_str!("../fixtures/real-errors.jsonl");

struct Entry {
    text: String,
    source: String,
    category: String,
    also: Vec<String>,
    kind: Option<String>,
    batch: u64,
}

fn corpus() -> Vec<Entry> {
    CORPUS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("line {}: no {k}", i + 1))
                    .to_string()
            };
            Entry {
                text: s("text"),
                source: s("source"),
                category: s("category"),
                also: v["also"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                kind: v["kind"].as_str().map(String::from),
                batch: v["batch"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("line {}: no batch", i + 1)),
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Half {
    Old,
    Tuning,
    HeldOut,
}

/// The split rule (see the module doc): never change it.
fn half(e: &Entry) -> Half {
    match (e.batch, fnv1a(e.text.bytes()) % 2) {
        (1, _) => Half::Old,
        (_, 0) => Half::Tuning,
        _ => Half::HeldOut,
    }
}

fn agrees(e: &Entry) -> bool {
    let got = classify(&e.text).kind.name();
    got == e.category || e.also.iter().any(|a| a == got)
}

/// A text has a specific category when `other` is not among its accepted answers.
fn specific(e: &Entry) -> bool {
    e.category != "other" && !e.also.iter().any(|a| a == "other")
}

/// (agreeing, total, `other` on texts with a specific category, texts with a specific category).
fn score(entries: &[&Entry]) -> (usize, usize, usize, usize) {
    let agree = entries.iter().filter(|e| agrees(e)).count();
    let specific: Vec<_> = entries.iter().filter(|e| specific(e)).collect();
    let other = specific
        .iter()
        .filter(|e| classify(&e.text).kind == ErrorKind::Other)
        .count();
    (agree, entries.len(), other, specific.len())
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

#[test]
fn corpus_agreement() {
    let entries = corpus();
    let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
    for e in &entries {
        // Every label in the corpus must be a category the classifier can answer.
        for name in std::iter::once(&e.category).chain(&e.also) {
            assert!(
                names.contains(&name.as_str()),
                "unknown category {name:?} ({})",
                e.source
            );
        }
        assert!(e.batch == 1 || e.source.starts_with("https://") || e.source.contains(':'));
    }
    let of = |h: Half| -> Vec<&Entry> { entries.iter().filter(|e| half(e) == h).collect() };
    let (old, tuning, held_out) = (of(Half::Old), of(Half::Tuning), of(Half::HeldOut));
    let all: Vec<&Entry> = entries.iter().collect();
    for (label, set) in [
        ("old corpus", &old),
        ("tuning", &tuning),
        ("held-out", &held_out),
        ("all", &all),
    ] {
        let (agree, total, other, specific) = score(set);
        println!(
            "{label}: {agree}/{total} agree ({:.1} %); other on {other}/{specific} texts with a specific category ({:.1} %)",
            pct(agree, total),
            pct(other, specific)
        );
    }
    // Only the tuning and old halves' misses are shown.
    for e in old.iter().chain(&tuning).filter(|e| !agrees(e)) {
        let c = classify(&e.text);
        let start: String = e.text.chars().take(100).collect();
        println!(
            "  miss: {start}…\n    expected {} (also {:?}), got {} ({:?}); {}",
            e.category,
            e.also,
            c.kind.name(),
            c.detail,
            e.source
        );
    }
    assert!(
        entries.len() >= 150,
        "only {} corpus entries",
        entries.len()
    );
    let (agree, total, ..) = score(&old);
    assert_eq!(agree, total, "the old corpus must stay at 100 %");
    let (agree, total, ..) = score(&held_out);
    assert!(
        agree * 100 >= total * 90,
        "held-out {agree}/{total} below 90 %"
    );
    let (_, _, other, specific) = score(&all);
    assert!(other * 100 < specific * 5, "other on {other}/{specific}");
}

/// Where the corpus names a finer kind, the classifier gives it (reported, and held at 80 %).
#[test]
fn corpus_kinds() {
    let entries = corpus();
    let with_kind: Vec<_> = entries.iter().filter(|e| e.kind.is_some()).collect();
    let same = with_kind
        .iter()
        .filter(|e| classify(&e.text).detail == e.kind.as_deref())
        .count();
    println!("kind: {same}/{} agree", with_kind.len());
    // As for categories, only misses outside the held-out half are shown.
    for e in with_kind.iter().filter(|e| half(e) != Half::HeldOut) {
        let got = classify(&e.text).detail;
        if got != e.kind.as_deref() {
            println!(
                "  kind miss: {:?} expected, got {got:?}; {}",
                e.kind, e.source
            );
        }
    }
    assert!(
        same * 100 >= with_kind.len() * 80,
        "{same}/{}",
        with_kind.len()
    );
}

/// Classification is a pure function of the text: same input, same answer, in any order.
#[test]
fn classification_is_pure() {
    let entries = corpus();
    let first: Vec<_> = entries.iter().map(|e| classify(&e.text)).collect();
    let again: Vec<_> = entries.iter().rev().map(|e| classify(&e.text)).collect();
    for (a, b) in first.iter().zip(again.iter().rev()) {
        assert_eq!(a, b);
    }
}
