//! The order of stages that ARCHITECTURE.md states, kept by the code: every `crate::X`
//! a file under src/ names must be its own stage or one below it. Reads the source as text
//! (comments skipped), so it needs no build of anything else and names the file, the line
//! and the edge that breaks the order.
use std::path::Path;

/// The stages, lowest first. Stages on one line may use each other: the foundation
/// everything stands on (errors, formatting, time, the platform layer, crash points).
const ORDER: &[&[&str]] = &[
    &["error", "format", "timefmt", "sys", "fault"],
    &["control"],
    &["observe"],
    &["state"],
    &["worker"],
    &["reconcile"],
    &["fleet"],
    &["output"],
    &["cli"],
    &["fuzzing"],
];

fn rank(stage: &str) -> Option<usize> {
    ORDER.iter().position(|s| s.contains(&stage))
}

/// The stage a file belongs to: its folder under src/, or its own name at the top.
fn stage_of(rel: &Path) -> String {
    let mut c = rel.components();
    let first = c.next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::<module>` a line of code names (comments and doc comments left out).
fn edges(text: &str) -> Vec<(usize, String)> {
    let mut v = vec![];
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` imports name several stages at once
            if name.is_empty() && after.starts_with('{') {
                let inner = after[1..].split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let m: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !m.is_empty() {
                        v.push((n + 1, m));
                    }
                }
            } else if !name.is_empty() {
                v.push((n + 1, name));
            }
            rest = after;
        }
    }
    v
}

#[test]
fn every_use_of_another_stage_points_down_the_stated_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = vec![];
    let mut checked = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let stage = stage_of(rel);
        if matches!(stage.as_str(), "lib" | "main") {
            continue; // the roots declare and run everything
        }
        let from = rank(&stage)
            .unwrap_or_else(|| panic!("src/{}: stage {stage} is not in ORDER", rel.display()));
        for (line, to) in edges(&std::fs::read_to_string(f).unwrap()) {
            let Some(r) = rank(&to) else {
                wrong.push(format!(
                    "src/{}:{line}: crate::{to} is not a stage in ORDER",
                    rel.display()
                ));
                continue;
            };
            checked += 1;
            if r > from {
                wrong.push(format!(
                    "src/{}:{line}: {stage} -> {to} (a {stage} file may use only its own stage or those below: {})",
                    rel.display(),
                    ORDER[..=from].iter().map(|s| s.join("/")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} edges found: is the parser reading src/?"
    );
    assert!(
        wrong.is_empty(),
        "edges against the order in ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_stated_order_is_the_one_in_architecture_md() {
    let arch =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let stated = arch
        .lines()
        .find(|l| l.starts_with("Order of stages:"))
        .expect("ARCHITECTURE.md states the order in a line beginning `Order of stages:`");
    let want = ORDER
        .iter()
        .map(|s| s.join(", "))
        .collect::<Vec<_>>()
        .join(" < ");
    assert!(
        stated.contains(&want),
        "ARCHITECTURE.md says {stated:?}; this test keeps {want:?}"
    );
}

#[test]
fn the_edge_reader_sees_imports_paths_and_braces() {
    let e = edges(
        "use crate::{control::job, state};\nlet x = crate::observe::pct(1, 2); // crate::cli\n/// crate::output in a doc\n",
    );
    let names: Vec<&str> = e.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["control", "state", "observe"]);
}
