//! Faults, on the real binary: kill -9 at every crash point of a tick, workers killed while
//! their ballast grows or shrinks, hostile and failing state and ballast filesystems.
//! Parallel-safe: CPU and memory at level 0, disk only on the test's own small tmpfs.
mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

/// SplitMix64: the iteration order is random but reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("CRO_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("seed {seed} (replay: CRO_TEST_SEED={seed})");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn disk_desired(m: &Path, target: u32, extra: &str) -> String {
    format!(
        r#"{{"version":1,{extra}"disk":{{"target_percent":{target},"min_free_percent":5,"min_free_gib":0,"fill":"write","mounts":["{}"]}}}}"#,
        m.display()
    )
}

/// The states the crash test moves between: every worker at level 0 plus a disk ballast,
/// a changed disk target (job rewrites), only CPU (two removals), paused (all removed).
fn crash_states(m: &Path) -> Vec<(String, Vec<String>)> {
    let disk_id = cro::queue::disk_job_id(m);
    let all = r#""cpu":{"target_percent":0},"memory":{"target_percent":0},"#;
    vec![
        (
            disk_desired(m, 30, all),
            vec!["cpu".into(), disk_id.clone(), "memory".into()],
        ),
        (
            disk_desired(m, 50, all),
            vec!["cpu".into(), disk_id, "memory".into()],
        ),
        (
            r#"{"version":1,"cpu":{"target_percent":0},"memory":{"enabled":false},"disk":{"enabled":false}}"#.into(),
            vec!["cpu".into()],
        ),
        (
            disk_desired(m, 30, &format!(r#""paused":true,{all}"#)),
            vec![],
        ),
    ]
}

/// Exactly one live worker per expected job, none other, and each job file readable.
fn assert_converged(e: &Env, want: &[String], what: &str) {
    wait_for_or(
        Duration::from_secs(10),
        || {
            let ids: Vec<String> = e.workers().into_iter().map(|w| w.0).collect();
            (ids == want).then_some(())
        },
        || format!("{what}: workers {:?}, want {want:?}", e.workers()),
    );
    for id in want {
        let p = e.state().join("jobs").join(format!("{id}.json"));
        let b = std::fs::read(&p).unwrap_or_else(|err| panic!("{what}: {}: {err}", p.display()));
        let v: serde_json::Value = serde_json::from_slice(&b)
            .unwrap_or_else(|err| panic!("{what}: {} is not JSON: {err}", p.display()));
        assert_eq!(v["id"], id.as_str(), "{what}");
    }
}

fn assert_nothing_left(e: &Env, m: &Path, what: &str) {
    assert!(
        e.workers().is_empty(),
        "{what}: workers left: {:?}",
        e.workers()
    );
    assert!(
        e.job_files().is_empty(),
        "{what}: job files left: {:?}",
        e.job_files()
    );
    let ballast: Vec<_> = std::fs::read_dir(m.join(".cro-ballast"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.file_name())
        .collect();
    assert!(ballast.is_empty(), "{what}: ballast left: {ballast:?}");
    let temps: Vec<_> = std::fs::read_dir(e.state())
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "{what}: temp files left: {temps:?}");
}

/// `rounds` crashing passes at each of `points`: before each, converge on a state; after
/// each, one pass must converge (one worker per job, none other, no stray ballast), a
/// second must change nothing, and every 8th iteration `recover` must leave nothing.
fn crash_loop(points: &[&str], rounds: usize) {
    let mut e = Env::new();
    let m = e.tmpfs(16);
    let states = crash_states(&m);
    let mut rng = Rng::from_env();
    let mut hits = vec![0u32; points.len()];
    let iterations = rounds * points.len();
    for i in 0..iterations {
        let p = i % points.len();
        let point = points[p];
        // From a converged state `from`, one crashing pass towards `to`. The removal
        // points need a state that removes jobs, the start points one that starts them.
        let (from, to) = match point {
            "remove-after-delete" | "remove-before-ballast" => {
                (rng.below(2) as usize, 2 + rng.below(2) as usize)
            }
            "after-lock-slot" | "after-spawn" => (2 + rng.below(2) as usize, rng.below(2) as usize),
            _ => loop {
                let (a, b) = (rng.below(4) as usize, rng.below(4) as usize);
                if a != b {
                    break (a, b);
                }
            },
        };
        // Points passed several times a tick (a file written, a job started or removed):
        // crash at a random one of the first two.
        let nth = match point {
            "tick-start" | "after-sense" | "history-torn" | "after-history" => 1,
            _ => 1 + rng.below(2),
        };
        e.desired(&states[from].0);
        e.ok(&["reconcile", "--once"]);
        assert_converged(
            &e,
            &states[from].1,
            &format!("iteration {i}: before the crash"),
        );
        let (json, want) = &states[to];
        e.desired(json);
        let what = format!("iteration {i}, crash at {point}:{nth}, state {from} -> {to}");
        let out = e
            .cmd()
            .env(cro::fault::ENV, format!("{point}:{nth}"))
            .args(["reconcile", "--once"])
            .output()
            .unwrap();
        if out.status.signal() == Some(libc::SIGKILL) {
            hits[p] += 1;
        } else {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let r = e.run(&["reconcile", "--once"]);
        assert_eq!(r.code, 0, "{what}: the pass after the crash failed: {r:?}");
        assert_converged(&e, want, &what);
        if !want.iter().any(|id| id.starts_with("disk")) {
            let left = cro::ballast::bytes(&m);
            assert_eq!(left, 0, "{what}: no disk job, yet {left} bytes of ballast");
        }
        // A second pass changes nothing: same workers, no job rewritten.
        let before = e.workers();
        e.ok(&["reconcile", "--once"]);
        assert_eq!(e.workers(), before, "{what}: second pass changed workers");
        if i % 8 == 7 {
            e.ok(&["recover"]);
            assert_nothing_left(&e, &m, &what);
        }
        // The history stays readable whatever was torn.
        e.ok(&["history", "--json"]);
    }
    eprintln!("crash hits by point:");
    for (p, n) in points.iter().zip(&hits) {
        eprintln!("  {p:<22} {n}");
    }
    for (p, n) in points.iter().zip(&hits) {
        assert!(
            *n as usize * 2 >= rounds,
            "crash point {p} was reached only {n} times of {rounds}: {hits:?}"
        );
    }
    e.ok(&["recover"]);
    assert_nothing_left(&e, &m, "final recover");
}

// 110 crashing passes in all, over every point in cro::fault::POINTS (checked below), in
// four tests that run side by side (they mostly wait on workers).
const ROUNDS: usize = 10;

#[test]
fn crash_while_sensing_or_writing_files() {
    crash_loop(
        &["tick-start", "after-sense", "before-rename", "after-rename"],
        ROUNDS,
    );
}

#[test]
fn crash_while_starting_workers() {
    crash_loop(
        &["after-write-job", "after-lock-slot", "after-spawn"],
        ROUNDS,
    );
}

#[test]
fn crash_while_removing_jobs() {
    crash_loop(&["remove-after-delete", "remove-before-ballast"], ROUNDS);
}

#[test]
fn crash_while_appending_history() {
    crash_loop(&["history-torn", "after-history"], ROUNDS);
}

#[test]
fn the_crash_tests_cover_every_point() {
    let src = std::fs::read_to_string(file!()).unwrap();
    for p in cro::fault::POINTS {
        assert!(
            src.matches(&format!("\"{p}\"")).count() >= 1,
            "crash point {p} is not exercised by tests/faults.rs"
        );
    }
}

/// Used percent of the filesystem at `m` (df's used / (used + available)).
fn used_percent(m: &Path) -> f64 {
    cro::observe::fs_usage(m).unwrap().used_percent()
}

#[test]
fn disk_workers_killed_while_growing_or_trimming_are_replaced_and_recover_cleans() {
    let mut e = Env::new();
    let m = e.tmpfs(64);
    let id = cro::queue::disk_job_id(&m);
    let none = r#""cpu":{"enabled":false},"memory":{"enabled":false},"#;
    let mut rng = Rng::from_env();
    let mut killed_growing = 0;
    let mut killed_trimming = 0;
    for round in 0..8 {
        // Alternate a high and a low target so each kill lands mid-growth or mid-trim.
        let (target, growing) = if round % 2 == 0 {
            (70, true)
        } else {
            (15, false)
        };
        e.desired(&disk_desired(&m, target, none));
        let before = used_percent(&m);
        e.ok(&["reconcile", "--once"]);
        let pid = wait_for(Duration::from_secs(10), "the disk worker", || {
            e.workers().into_iter().find(|w| w.0 == id).map(|w| w.1)
        });
        // Growing: kill as soon as the ballast has started to grow (it writes noise in
        // steps of up to 64 MiB, so this lands mid-step). Trimming is one truncate, so it is
        // either done or not: kill at a random moment around it.
        if growing {
            let start = std::time::Instant::now();
            while used_percent(&m) < before + 2.0 && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(400)));
        }
        let mid = used_percent(&m);
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_for(Duration::from_secs(5), "the killed worker to go", || {
            (!pid_alive(pid)).then_some(())
        });
        let t = target as f64;
        let moving = if growing {
            mid > before + 1.0 && mid < t - 2.0
        } else {
            mid > t + 2.0
        };
        if moving && growing {
            killed_growing += 1;
        } else if moving {
            killed_trimming += 1;
        }
        eprintln!(
            "round {round}: target {target} %, {before:.1} % -> killed at {mid:.1} %{}",
            match (moving, growing) {
                (true, true) => " (mid-growth)",
                (true, false) => " (before the trim)",
                _ => " (after)",
            }
        );
        // The next pass starts one new worker, which adopts the dead one's files and
        // reaches the target; half-written files are counted, not leaked.
        e.ok(&["reconcile", "--once"]);
        let ws: Vec<_> = e.workers().into_iter().filter(|w| w.0 == id).collect();
        assert!(ws.len() <= 1, "round {round}: {ws:?}");
        wait_for_or(
            Duration::from_secs(20),
            || {
                (used_percent(&m) - target as f64)
                    .abs()
                    .le(&3.0)
                    .then_some(())
            },
            || {
                format!(
                    "round {round}: used {:.1} %, target {target} %",
                    used_percent(&m)
                )
            },
        );
        let ws: Vec<_> = e.workers().into_iter().filter(|w| w.0 == id).collect();
        assert_eq!(ws.len(), 1, "round {round}: one worker: {ws:?}");
        // The new worker's status (published once a second) counts what is on disk.
        wait_for_or(
            Duration::from_secs(5),
            || {
                let said = e.job_status(&id)?["ballast_bytes"].as_u64()?;
                (cro::ballast::bytes(&m).abs_diff(said) <= 1 << 20).then_some(())
            },
            || {
                format!(
                    "round {round}: status {:?}, {} B on disk",
                    e.job_status(&id),
                    cro::ballast::bytes(&m)
                )
            },
        );
    }
    eprintln!("killed mid-growth {killed_growing} of 4, before the trim {killed_trimming} of 4");
    assert!(
        killed_growing >= 2,
        "only {killed_growing} kills landed while the ballast grew"
    );
    e.ok(&["recover"]);
    assert_nothing_left(&e, &m, "recover");
    assert!(
        used_percent(&m) < 1.0,
        "used {:.1} % after recover",
        used_percent(&m)
    );
}
