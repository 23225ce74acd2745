//! The classifier against real error texts: `tests/fixtures/real-errors.jsonl`, each line
//! `{"text","source","category","also":[…],"why"}` with the category a person chose. A text
//! agrees when the classified kind is its category or one of its `also` kinds.

use chops::domain::classify::{classify, ErrorKind};

const CORPUS: &str = include_str!("../fixtures/real-errors.jsonl");

struct Entry {
    text: String,
    source: String,
    category: String,
    also: Vec<String>,
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
            }
        })
        .collect()
}

#[test]
fn corpus_agreement() {
    let entries = corpus();
    let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
    let mut agree = 0;
    let mut misses = Vec::new();
    for e in &entries {
        // Every label in the corpus must be a category the classifier can answer.
        for name in std::iter::once(&e.category).chain(&e.also) {
            assert!(
                names.contains(&name.as_str()),
                "unknown category {name:?} ({})",
                e.source
            );
        }
        let got = classify(&e.text).kind.name();
        if got == e.category || e.also.iter().any(|a| a == got) {
            agree += 1;
        } else {
            let start: String = e.text.chars().take(90).collect();
            misses.push(format!(
                "  {start}…\n    expected {} (also {:?}), got {got}; {}",
                e.category, e.also, e.source
            ));
        }
    }
    let total = entries.len();
    println!(
        "corpus: {agree}/{total} agree ({:.1} %)",
        100.0 * agree as f64 / total as f64
    );
    for m in &misses {
        println!("{m}");
    }
    assert!(total >= 40, "only {total} corpus entries");
    assert!(
        agree * 100 >= total * 95,
        "{agree}/{total} agree, below 95 %:\n{}",
        misses.join("\n")
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
