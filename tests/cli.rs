//! End-to-end tests of the real binary in temporary state directories. These put no real
//! load on the machine (levels are 0), so they run in parallel; the measuring tests are
//! in tests/measure.rs and run serially.
mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

#[test]
fn schema_file_is_fresh() {
    let e = Env::new();
    let out = e.ok(&["schema"]).stdout;
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/desired-state.schema.json"
    ))
    .unwrap();
    assert!(
        out == checked_in,
        "schema/desired-state.schema.json is stale: run `cargo run -- schema > schema/desired-state.schema.json`"
    );
}

#[test]
fn examples_validate() {
    let e = Env::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        let p = f.path();
        if p.extension().is_some_and(|x| x == "json")
            && p.file_name().unwrap() != "grafana-dashboard.json"
        {
            let r = e.run(&["validate", "--no-mount-check", p.to_str().unwrap()]);
            assert_eq!(r.code, 0, "{}: {r:?}", p.display());
            n += 1;
        }
    }
    assert!(n >= 5, "expected at least five examples, found {n}");
    // the data-disk example names /data; where it does not exist, the error says which field
    if !std::path::Path::new("/data").exists() {
        let r = e.run(&["validate", &format!("{dir}/data-disk.json")]);
        assert_eq!(r.code, 78, "{r:?}");
        assert!(r.stderr.contains("disk.mounts[0]"), "{r:?}");
    }
}

#[test]
fn validate_reports_file_field_and_position() {
    let e = Env::new();
    let cases: &[(&str, &str)] = &[
        (
            "{\n  \"version\": 1\n  \"paused\": true\n}",
            "line 3, column 3",
        ),
        (r#"{"version":1,"cpu":{"enabeld":true}}"#, "cpu.enabeld"),
        (
            r#"{"version":1,"cpu":{"target_percent":"forty"}}"#,
            "cpu.target_percent",
        ),
        (
            r#"{"version":1,"memory":{"target_percent":95}}"#,
            "memory.min_available_percent",
        ),
        (
            r#"{"version":1,"disk":{"mounts":["relative/path"]}}"#,
            "disk.mounts[0]",
        ),
        (
            r#"{"version":1,"cpu":{"statistic":"median"}}"#,
            "cpu.statistic",
        ),
        (r#"{"version":1,"interval_seconds":0}"#, "interval_seconds"),
        (r#"{"version":1,"paused":true,"paused":false}"#, "paused"),
        ("", "empty"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let f = e.path().join(format!("bad{i}.json"));
        std::fs::write(&f, text).unwrap();
        let r = e.run(&["validate", f.to_str().unwrap()]);
        assert_eq!(r.code, 78, "case {i}: {r:?}");
        assert!(
            r.stderr.contains(f.to_str().unwrap()),
            "case {i} must name the file: {r:?}"
        );
        assert!(
            r.stderr.contains(needle),
            "case {i} must mention {needle:?}: {r:?}"
        );
    }
}

#[test]
fn init_writes_once_and_force_keeps_a_backup() {
    let e = Env::new();
    e.ok(&["init"]);
    let first = std::fs::read_to_string(e.desired_path()).unwrap();
    assert!(first.contains("\"$schema\""));
    assert!(e.state().join("desired-state.schema.json").exists());
    e.ok(&["validate"]);
    std::fs::write(e.desired_path(), r#"{"version":1,"paused":true}"#).unwrap();
    let r = e.run(&["init"]);
    assert_eq!(r.code, 2, "init must not overwrite without --force: {r:?}");
    assert_eq!(
        std::fs::read_to_string(e.desired_path()).unwrap(),
        r#"{"version":1,"paused":true}"#
    );
    e.ok(&["init", "--force"]);
    let baks: Vec<_> = std::fs::read_dir(e.state())
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().contains(".bak-"))
        .collect();
    assert_eq!(baks.len(), 1);
    assert_eq!(
        std::fs::read_to_string(baks[0].path()).unwrap(),
        r#"{"version":1,"paused":true}"#
    );
}

#[test]
fn plan_without_desired_uses_default_and_changes_nothing() {
    let e = Env::new();
    let r = e.ok(&["plan"]);
    assert!(r.stderr.contains("built-in default"), "{r:?}");
    assert!(
        r.stdout.contains("write job cpu: new") && r.stdout.contains("write job memory: new"),
        "{r:?}"
    );
    assert!(!e.state().exists(), "plan must create nothing");
    let j = e.ok(&["plan", "--json"]).json();
    assert_eq!(j["jobs"].as_array().unwrap().len(), 2);
}

/// Issue 20: a fresh host pads from the first pass by default (`first_window: pace`): the
/// built-in default and a plain mean target both hold at least the target at once; only an
/// operator who opts into `defer` sees level 0 with the reason.
#[test]
fn a_fresh_host_pads_from_the_first_pass_unless_it_opts_into_defer() {
    let e = Env::new();
    let levels = |e: &Env| -> Vec<(String, f64, f64)> {
        e.ok(&["plan", "--json"]).json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["id"].as_str().unwrap().to_string(),
                    j["level_percent"].as_f64().unwrap(),
                    j["target_percent"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    // The built-in default: CPU and memory jobs at their tier target, memory held at it
    // from the first pass. (Memory, not CPU: organic memory use on a test machine is a few
    // percent, organic CPU can be anything while other tests run, and a busy CPU rightly
    // needs no padding.)
    let built_in = levels(&e);
    let ids: Vec<&str> = built_in.iter().map(|(id, ..)| id.as_str()).collect();
    assert_eq!(ids, ["cpu", "memory"], "{built_in:?}");
    let (_, level, target) = &built_in[1];
    assert!(*target >= 25.0, "tier target {target}");
    assert!(
        *level >= *target,
        "level {level} below target {target} on the first pass"
    );
    // an operator's plain 40 % target
    e.desired(r#"{"version":1,"cpu":{"enabled":false},"memory":{"target_percent":40},"disk":{"enabled":false}}"#);
    let (_, level, _) = levels(&e)[0].clone();
    assert!((40.0..45.0).contains(&level), "level {level}");
    // defer, chosen: nothing padded yet, and the plan says why
    e.desired(r#"{"version":1,"first_window":"defer","cpu":{"enabled":false},"memory":{"target_percent":40},"disk":{"enabled":false}}"#);
    assert_eq!(levels(&e)[0].1, 0.0);
    let r = e.ok(&["plan"]);
    assert!(r.stdout.contains("deferring"), "{r:?}");
}

/// Issue 20: the status tables stay aligned when a name is longer than the column was
/// (a long mount path, so a long job id too): every value ends where its header ends.
#[test]
fn status_tables_stay_aligned_with_a_long_mount_path() {
    let e = Env::new();
    let mount = e.path().join("srv/a-rather-long-mount-path/for-data");
    std::fs::create_dir_all(&mount).unwrap();
    e.desired(&idle_desired(&mount));
    e.ok(&["reconcile", "--once"]);
    let out = e.ok(&["status"]).stdout;
    // the right edge of each header word, and each row's value under it
    let edges = |header: &str, words: &[&str]| -> Vec<usize> {
        words
            .iter()
            .map(|w| {
                header
                    .find(&format!(" {w}"))
                    .unwrap_or_else(|| panic!("{w} in {header}"))
                    + 1
                    + w.len()
            })
            .collect()
    };
    let value_ends = |row: &str| -> Vec<usize> {
        let b = row.as_bytes();
        (1..b.len())
            .filter(|&i| b[i - 1] != b' ' && b[i] == b' ')
            .chain([b.len()])
            .collect()
    };
    let lines: Vec<&str> = out.lines().collect();
    let h = lines
        .iter()
        .position(|l| l.starts_with("RESOURCE"))
        .expect(&out);
    let cols = [
        "TARGET",
        "STAT",
        "TOTAL",
        "ORGANIC",
        "SYNTHETIC",
        "LEVEL",
        "WINDOW",
        "COVER",
    ];
    let want = edges(lines[h], &cols);
    let rows: Vec<&&str> = lines[h + 1..]
        .iter()
        .take_while(|l| !l.is_empty() && !l.starts_with("synthetic cost"))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[2].starts_with(&format!("disk {}", mount.display())),
        "{out}"
    );
    for r in &rows {
        // the name is the first word ("disk" and the path: two); the next eight values end
        // under their headers
        let skip = if r.starts_with("disk ") { 2 } else { 1 };
        let ends = value_ends(r);
        assert_eq!(
            &ends[skip..skip + cols.len()],
            &want[..],
            "misaligned row in:\n{out}"
        );
    }
    let j = lines.iter().position(|l| l.starts_with("JOB")).expect(&out);
    let want = edges(lines[j], &["PID"]);
    let jobs: Vec<&&str> = lines[j + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(jobs.len(), 3, "{out}");
    assert!(
        jobs.iter().any(|l| l.len() > 40),
        "expected a long job id:\n{out}"
    );
    for r in &jobs {
        assert_eq!(value_ends(r)[1], want[0], "misaligned job row in:\n{out}");
    }
}

/// Issue 20: where tests/run.sh cannot install (no apt-get on the path, as on another
/// distribution), it stops before any test with one message naming every missing tool and
/// the package that brings it.
#[test]
fn the_test_script_names_every_missing_tool_and_its_package_before_running_anything() {
    let e = Env::new();
    let bin = e.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // a machine with bash and the few utilities the script itself uses, nothing else
    for t in ["bash", "id", "sed", "dirname"] {
        let p = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(t))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(p, bin.join(t)).unwrap();
    }
    let o = std::process::Command::new(bin.join("bash"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/run.sh"))
        .env_clear()
        .env("PATH", &bin)
        .env("CRO_TEST_PYTHON", bin.join("python3"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing may run: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    for (tool, pkg) in [
        ("promtool", "prometheus"),
        ("chromium", "chromium"),
        ("nginx", "nginx-light"),
        ("wrk", "wrk"),
        ("stress-ng", "stress-ng"),
        ("victoria-metrics", "victoria-metrics"),
        ("mkfs.ext4", "e2fsprogs"),
        ("seccomp", "python3-seccomp"),
        ("rpmbuild", "rpm"),
        ("systemd-analyze", "systemd"),
        ("cargo", "rustup"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(tool) && l.contains(pkg)),
            "{tool} ({pkg}) not named in:\n{err}"
        );
    }
    assert!(
        err.contains("apt-get install --no-install-recommends"),
        "{err}"
    );
}

#[test]
fn reconcile_twice_rewrites_nothing_and_keeps_workers() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&["reconcile", "--once"]);
    let first = three_workers(&e);
    let stat = |n: &str| std::fs::metadata(e.state().join("jobs").join(n)).unwrap();
    let before: Vec<_> = ["cpu.json", "memory.json"]
        .iter()
        .map(|n| (stat(n).ino(), stat(n).mtime_nsec()))
        .collect();
    let r = e.ok(&["reconcile", "--once"]);
    assert_eq!(
        r.stdout, "",
        "a second pass with nothing changed does nothing: {r:?}"
    );
    let after: Vec<_> = ["cpu.json", "memory.json"]
        .iter()
        .map(|n| (stat(n).ino(), stat(n).mtime_nsec()))
        .collect();
    assert_eq!(before, after, "job files were rewritten");
    assert_eq!(e.workers(), first, "workers changed");
    // two history records, in the documented shape
    let (day,) = (std::fs::read_dir(e.state().join("history"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path(),);
    let text = std::fs::read_to_string(day).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for k in ["ts", "interval_s", "cpu", "memory", "disk"] {
        assert!(lines[1].get(k).is_some(), "record lacks {k}: {}", lines[1]);
    }
    assert!(lines[1]["cpu"]["total"].as_f64().is_some());
}

#[test]
fn twenty_parallel_reconciles_start_one_worker_per_job() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    let codes = parallel_passes(&e, 20);
    assert!(
        codes.iter().all(|&c| c == 0 || c == 75),
        "only 0 or 75 allowed: {codes:?}"
    );
    assert!(codes.contains(&0));
    // more passes, racing, to give a second worker every chance to appear
    parallel_passes(&e, 10);
    std::thread::sleep(Duration::from_millis(500));
    let ws = e.workers();
    let ids: Vec<&str> = ws.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(ws.len(), 3, "exactly one worker per job: {ws:?}");
    assert!(
        ids[0] == "cpu" && ids[1].starts_with("disk-") && ids[2] == "memory",
        "{ws:?}"
    );
}

#[test]
fn killed_worker_is_restarted_exactly_once() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&["reconcile", "--once"]);
    let ws = three_workers(&e);
    let (_, mem_pid) = ws.iter().find(|w| w.0 == "memory").unwrap().clone();
    wait_for(
        Duration::from_secs(5),
        "the memory worker's first status",
        || e.job_status("memory"),
    );
    send_signal(mem_pid, rustix::process::Signal::KILL);
    wait_for(Duration::from_secs(5), "the killed worker to die", || {
        (!pid_alive(mem_pid)).then_some(())
    });
    let s = e.status();
    let job = s["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "memory")
        .unwrap()
        .clone();
    assert_eq!(job["alive"], false);
    assert_eq!(
        job["state"], "crashed",
        "a killed worker leaves 'running' in its status: {job}"
    );
    let r = e.ok(&["reconcile", "--once"]);
    assert_eq!(
        r.stdout.trim(),
        format!(
            "start worker memory: worker {mem_pid} died without saying why (crashed or killed)"
        )
    );
    let ws2 = wait_for(Duration::from_secs(10), "three workers again", || {
        Some(e.workers()).filter(|w| w.len() == 3)
    });
    assert!(!ws2.iter().any(|w| w.1 == mem_pid));
    for (id, pid) in &ws {
        if id != "memory" {
            assert!(
                ws2.contains(&(id.clone(), *pid)),
                "{id} must keep its worker"
            );
        }
    }
}

#[test]
fn state_lock_held_means_exit_75() {
    let e = Env::new();
    std::fs::create_dir_all(e.state()).unwrap();
    let f = std::fs::File::create(e.state().join("lock")).unwrap();
    f.lock().unwrap();
    let r = e.run(&["reconcile", "--once"]);
    assert_eq!(r.code, 75, "{r:?}");
    assert!(r.stderr.contains("try again"), "{r:?}");
    drop(f);
}

#[test]
fn bad_desired_file_changes_nothing_running() {
    let e = Env::new();
    let (_, ws) = e.start_idle();
    let job_before = std::fs::read(e.state().join("jobs/cpu.json")).unwrap();
    e.desired(r#"{"version":1,"cpu":{"target_percent":250}}"#);
    for cmd in [&["reconcile", "--once"][..], &["plan"][..]] {
        let r = e.run(cmd);
        assert_eq!(r.code, 78, "{cmd:?}: {r:?}");
        assert!(r.stderr.contains("cpu.target_percent"), "{r:?}");
    }
    let s = e.status();
    assert_eq!(s["desired"]["valid"], false);
    assert!(
        s["desired"]["error"]
            .as_str()
            .unwrap()
            .contains("cpu.target_percent")
    );
    assert_eq!(
        std::fs::read(e.state().join("jobs/cpu.json")).unwrap(),
        job_before
    );
    assert_eq!(e.workers(), ws);
}

#[test]
fn pause_stops_workers_and_removes_ballast() {
    let e = Env::new();
    let m = e.plain_mount();
    // a small real ballast in a plain directory: 0.001 % of this filesystem is at least a few KiB
    e.desired(&idle_desired(&m));
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
    std::fs::write(
        m.join(".cro-ballast/ballast-000000.bin"),
        vec![7u8; 1 << 20],
    )
    .unwrap();
    e.desired(&idle_desired(&m).replacen("{\"version\":1,", "{\"version\":1,\"paused\":true,", 1));
    let r = e.ok(&["reconcile", "--once"]);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("remove job"))
            .count(),
        3,
        "{r:?}"
    );
    assert!(e.workers().is_empty(), "{:?}", e.workers());
    assert!(!m.join(".cro-ballast").exists());
    assert!(e.job_files().is_empty(), "{:?}", e.job_files());
    // and back: unpausing starts them again
    e.desired(&idle_desired(&m));
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
}

/// Start `n` reconcile passes at once; their exit codes.
fn parallel_passes(e: &Env, n: usize) -> Vec<i32> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            e.cmd()
                .args(["reconcile", "--once"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect()
}

fn assert_clean(e: &Env, m: &std::path::Path) {
    assert!(e.workers().is_empty(), "workers left: {:?}", e.workers());
    assert!(
        e.job_files().is_empty(),
        "job files left: {:?}",
        e.job_files()
    );
    assert!(!m.join(".cro-ballast").exists(), "ballast left");
}

#[test]
fn recover_from_normal_killed_deleted_and_garbage_states() {
    for scenario in [
        "normal",
        "killed",
        "deleted-jobs",
        "garbage-jobs",
        "orphan-ballast",
    ] {
        let e = Env::new();
        let (m, ws) = e.start_idle();
        std::fs::write(
            m.join(".cro-ballast/ballast-000001.bin"),
            vec![1u8; 1 << 20],
        )
        .unwrap();
        match scenario {
            "killed" => {
                for (_, pid) in &ws {
                    send_signal(*pid, rustix::process::Signal::KILL);
                }
                wait_for(Duration::from_secs(5), "workers to die", || {
                    ws.iter().all(|w| !pid_alive(w.1)).then_some(())
                });
            }
            "deleted-jobs" => {
                for f in e.job_files() {
                    std::fs::remove_file(e.state().join("jobs").join(f)).unwrap();
                }
            }
            "garbage-jobs" => {
                for f in e.job_files().iter().filter(|f| f.ends_with(".json")) {
                    std::fs::write(e.state().join("jobs").join(f), b"\x00garbage{{{").unwrap();
                }
                std::fs::write(e.state().join("jobs/zzz-unknown.json"), b"[]").unwrap();
            }
            "orphan-ballast" => {
                for (_, pid) in &ws {
                    send_signal(*pid, rustix::process::Signal::KILL);
                }
                wait_for(Duration::from_secs(5), "workers to die", || {
                    ws.iter().all(|w| !pid_alive(w.1)).then_some(())
                });
                for f in e.job_files() {
                    std::fs::remove_file(e.state().join("jobs").join(f)).unwrap();
                }
            }
            _ => {}
        }
        let r = e.ok(&["recover"]);
        assert!(
            r.stdout.contains("before:")
                && r.stdout
                    .contains("after:  no workers; 0 job file(s); no ballast"),
            "{scenario}: {r:?}"
        );
        assert_clean(&e, &m);
        for (_, pid) in &ws {
            assert!(!pid_alive(*pid), "{scenario}: worker {pid} survived");
        }
        let again = e.ok(&["recover"]);
        assert!(
            again
                .stdout
                .contains("before: no workers; 0 job file(s); no ballast"),
            "{scenario}: {again:?}"
        );
        assert_clean(&e, &m);
        let dry = e.ok(&["recover", "--dry-run"]);
        assert!(dry.stdout.contains("dry run"), "{dry:?}");
    }
}

#[test]
fn recover_never_signals_a_process_named_in_a_stale_status() {
    let e = Env::new();
    let (_, ws) = e.start_idle();
    for (_, pid) in &ws {
        send_signal(*pid, rustix::process::Signal::KILL);
    }
    wait_for(Duration::from_secs(5), "workers to die", || {
        ws.iter().all(|w| !pid_alive(w.1)).then_some(())
    });
    // an unrelated process now "owns" the PID recorded in the cpu status file
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let p = e.state().join("jobs/cpu.status.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    st["pid"] = serde_json::json!(bystander.id());
    std::fs::write(&p, st.to_string()).unwrap();
    e.ok(&["recover"]);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "recover signalled an unrelated process"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn second_worker_for_a_live_job_exits_at_once() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
    let t = std::time::Instant::now();
    let job = e.state().join("jobs/cpu.json");
    let r = e.run(&["worker", "--job", job.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(e.workers().len(), 3);
}

#[test]
fn disabling_a_resource_stops_only_its_worker() {
    let e = Env::new();
    let (m, ws) = e.start_idle();
    e.desired(
        &Desired::idle(&m)
            .replace("/cpu", serde_json::json!({"enabled": false}))
            .text(),
    );
    let r = e.ok(&["reconcile", "--once"]);
    assert_eq!(r.stdout.trim(), "remove job cpu: not in the desired state");
    let now = e.workers();
    assert_eq!(now.len(), 2);
    assert!(ws.iter().filter(|w| w.0 != "cpu").all(|w| now.contains(w)));
}

#[test]
fn status_json_has_the_documented_fields() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
    let s = wait_for(Duration::from_secs(5), "every job alive in status", || {
        let s = e.status();
        s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["alive"] == true)
            .then_some(s)
    });
    for r in ["cpu", "memory"] {
        for k in [
            "target_percent",
            "total_percent",
            "organic_percent",
            "synthetic_percent",
            "level_percent",
        ] {
            assert!(
                s["resources"][r][k].is_number(),
                "resources.{r}.{k} missing: {s}"
            );
        }
    }
    assert_eq!(s["resources"]["disk"].as_object().unwrap().len(), 1);
    assert_eq!(s["jobs"].as_array().unwrap().len(), 3);
    assert!(s["jobs"][0]["pid"].is_number());
    assert_eq!(s["desired"]["built_in_default"], false);
    assert!(s["host"]["memory_total_bytes"].as_u64().unwrap() > 0);
    let text = e.ok(&["status"]).stdout;
    assert!(text.contains("RESOURCE") && text.contains("JOB"), "{text}");
}

#[test]
fn history_reads_back_as_json_and_csv() {
    let e = Env::new();
    e.desired(r#"{"version":1,"cpu":{"target_percent":0},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
    e.ok(&["reconcile", "--once"]);
    e.ok(&["reconcile", "--once"]);
    let j = e.ok(&["history", "--json"]).json();
    assert_eq!(j.as_array().unwrap().len(), 2);
    let csv = e.ok(&["history", "--csv"]).stdout;
    assert_eq!(
        csv.lines().next().unwrap(),
        "ts,interval_s,resource,total,organic,synthetic,level,target"
    );
    assert_eq!(csv.lines().count(), 3);
    assert_eq!(e.run(&["history", "--since", "forever"]).code, 2);
}

#[test]
fn daemon_follows_edits_keeps_last_good_state_and_stops_on_sigterm() {
    let e = Env::new();
    let m = e.plain_mount();
    e.desired(&Desired::idle(&m).set("/interval_seconds", 1).text());
    let textfile = e.path().join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let mut d = Daemon(
        e.cmd()
            .arg("reconcile")
            .arg("--textfile-dir")
            .arg(&textfile)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let ws = three_workers(&e);
    // an edit by rename is picked up at once (max_synthetic_percent lands in the job
    // whatever the organic load; a level would depend on what else runs)
    e.desired(
        &Desired::idle(&m)
            .set("/interval_seconds", 1)
            .set("/cpu/max_synthetic_percent", 50)
            .text(),
    );
    let cpu_job = || std::fs::read_to_string(e.state().join("jobs/cpu.json")).unwrap_or_default();
    wait_for(
        Duration::from_secs(5),
        "the cpu job to follow the edit",
        || {
            cpu_job()
                .contains("\"max_synthetic_percent\": 50.0")
                .then_some(())
        },
    );
    // a bad edit keeps the last good state
    e.desired(r#"{"version":1,"cpu":{"target_percent":1000}}"#);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        d.0.try_wait().unwrap().is_none(),
        "the daemon must keep running on a bad edit"
    );
    // ... and says so in its metrics
    wait_for(
        Duration::from_secs(5),
        "cro_config_valid 0 in the daemon's metrics",
        || {
            std::fs::read_to_string(textfile.join("cro.prom"))
                .ok()
                .filter(|t| t.lines().any(|l| l == "cro_config_valid 0"))
        },
    );
    assert!(
        cpu_job().contains("\"max_synthetic_percent\": 50.0"),
        "the bad edit changed the job: {}",
        cpu_job()
    );
    assert_eq!(e.workers(), ws);
    send_signal(d.0.id() as i32, rustix::process::Signal::TERM);
    let out = wait_for(Duration::from_secs(5), "the daemon to exit", || {
        d.0.try_wait().unwrap()
    });
    assert!(out.success(), "{out:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(d.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("cpu.target_percent"),
        "the bad edit must be logged with its field: {err}"
    );
}

#[test]
fn no_symlink_in_ballast_dir_is_followed_by_recover() {
    let e = Env::new();
    let (m, _) = e.start_idle();
    let outside = e.path().join("precious.txt");
    std::fs::write(&outside, "keep").unwrap();
    std::os::unix::fs::symlink(&outside, m.join(".cro-ballast/link")).unwrap();
    std::os::unix::fs::symlink(&outside, e.state().join("jobs/evil.json")).unwrap();
    e.ok(&["recover"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    assert!(!m.join(".cro-ballast").exists());
    assert!(e.job_files().is_empty());
}

/// The level comes from the window policy, in `reconcile --once`, `plan` and the daemon
/// alike: five recorded days of organic CPU well above the target leave nothing to add,
/// and five idle days ask for more than the target (catching up).
#[test]
fn reconcile_levels_follow_the_recorded_window() {
    for (organic, expect_below) in [(60.0, true), (2.0, false)] {
        let e = Env::new();
        e.desired(r#"{"version":1,"window_days":10,"cpu":{"target_percent":25},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
        // one record a minute for five days, ending now
        e.write_history(
            5 * 1440,
            60.0,
            &format!(r#""cpu":{{"total":{organic},"synthetic":0.0,"level":0.0,"target":25.0}}"#),
        );
        let plan = e.ok(&["plan", "--json"]).json();
        let planned = plan["jobs"][0]["level_percent"].as_f64().unwrap();
        e.ok(&["reconcile", "--once"]);
        let job: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.state().join("jobs/cpu.json")).unwrap())
                .unwrap();
        let level = job["level_percent"].as_f64().unwrap();
        assert!(
            (level - planned).abs() < 0.5,
            "plan said {planned}, reconcile wrote {level}"
        );
        if expect_below {
            assert_eq!(level, 0.0, "organic {organic} % already meets 25 %");
        } else {
            assert!(
                level > 25.0,
                "after five idle days the level must catch up above the target: {level}"
            );
        }
        let s = e.status();
        let w = &s["resources"]["cpu"]["window"];
        assert!((w["value"].as_f64().unwrap() - organic).abs() < 1.0, "{w}");
        assert!(s["resources"]["cpu"]["forecast"]["note"].is_string());
    }
}

#[test]
fn completions_man_and_log_dir() {
    let e = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = e.ok(&["completions", shell]).stdout;
        assert!(
            out.contains("reconcile") && out.contains("recover"),
            "{shell}: {out:.200}"
        );
    }
    let man = e.ok(&["man"]).stdout;
    assert!(
        man.contains(".TH cro 1") && man.contains("reconcile"),
        "{man:.300}"
    );
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "OPTIONS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            man.contains(&format!(".SH {section}")),
            "no {section} in the man page"
        );
    }
    // one page: no subpages it does not ship
    assert!(
        !man.contains("cro\\-init(1)") && !man.contains("cro-init(1)"),
        "refers to a subpage"
    );
    // it renders cleanly where man is installed (CI's image has it)
    if std::path::Path::new("/usr/bin/man").exists() {
        let page = e.path().join("cro.1");
        std::fs::write(&page, &man).unwrap();
        let o = std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("EXIT STATUS"),
            "man -l failed"
        );
        let warnings = String::from_utf8_lossy(&o.stderr);
        assert!(warnings.trim().is_empty(), "man -l warns: {warnings}");
        // examples are shown as written, not reflowed into one paragraph
        assert!(text.lines().any(|l| l.trim() == "cro recover"), "{text}");
    }
    let logs = e.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    e.ok(&[
        "--log-dir",
        logs.to_str().unwrap(),
        "--log-level",
        "debug",
        "plan",
    ]);
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().to_string())
        .collect();
    assert!(files.iter().any(|f| f.starts_with("cro.log")), "{files:?}");
    // a log directory others can write is refused before anything runs (issue 24, 5)
    use std::os::unix::fs::PermissionsExt;
    let shared = e.path().join("shared-logs");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let r = e.run(&["--log-dir", shared.to_str().unwrap(), "plan"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("--log-dir") && r.stderr.contains("writable by everyone"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written there"
    );
    let r = e.run(&["--log-level", "loud", "plan"]);
    assert_eq!(r.code, 2, "an unknown level is a usage error: {r:?}");
    assert!(
        r.stderr.contains("error, warn, info, debug, trace"),
        "{r:?}"
    );
}

#[test]
fn status_names_the_host() {
    let e = Env::new();
    let h = &e.status()["host"];
    assert!(h["platform"].as_str().is_some_and(|p| !p.is_empty()), "{h}");
    assert!(h["memory_tier_gib"].as_f64().unwrap() >= 1.0);
    assert!(h["cpus"].as_u64().unwrap() >= 1);
    assert!(h["cgroup"]["version"].is_string());
    assert!(h["container"].is_boolean());
}

#[test]
fn textfile_metrics_for_node_exporter() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let dir = e.path().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&[
        "reconcile",
        "--once",
        "--textfile-dir",
        dir.to_str().unwrap(),
    ]);
    e.ok(&[
        "reconcile",
        "--once",
        "--textfile-dir",
        dir.to_str().unwrap(),
    ]);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        ["cro.prom"],
        "only the finished file, no temporary names"
    );
    let p = dir.join("cro.prom");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let text = std::fs::read_to_string(&p).unwrap();
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            typed.insert(t.split(' ').next().unwrap().to_string());
        } else if !l.starts_with('#') {
            let (series, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let name = series.split('{').next().unwrap();
            assert!(typed.contains(name), "sample without TYPE: {l}");
            samples.insert(
                series.to_string(),
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            );
        }
    }
    let m = e.plain_mount();
    for key in [
        r#"cro_reconcile_total{result="ok"}"#.to_string(),
        "cro_config_valid".into(),
        r#"cro_target_ratio{resource="cpu"}"#.into(),
        r#"cro_utilization_ratio{resource="memory",source="organic"}"#.into(),
        format!(r#"cro_workers{{resource="disk",mount="{}"}}"#, m.display()),
        format!(
            r#"cro_window_coverage_ratio{{resource="disk",mount="{}"}}"#,
            m.display()
        ),
        "cro_last_reconcile_timestamp_seconds".into(),
    ] {
        assert!(samples.contains_key(&key), "missing {key} in\n{text}");
    }
    assert_eq!(samples[r#"cro_reconcile_total{result="ok"}"#], 2.0);
    assert_eq!(samples["cro_config_valid"], 1.0);
    // a bad edit: the next pass fails with 78, but a daemon would report it; status does too
    e.desired(r#"{"version":1,"cpu":{"target_percent":400}}"#);
    assert_eq!(e.status()["desired"]["valid"], false);
}

#[test]
fn serve_is_read_only_and_survives_bad_requests() {
    let e = Env::new();
    let (_server, addr) = serve_idle(&e);
    let get = |path: &str| {
        http(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        )
    };
    let (code, head, body) = get("/");
    assert_eq!(code, 200, "{head}");
    assert!(head.to_lowercase().contains("content-type: text/html"));
    for needle in [
        "<svg",
        "class=\"organic\"",
        "class=\"synthetic\"",
        "class=\"target\"",
        "id=\"jobs\"",
    ] {
        assert!(body.contains(needle), "dashboard lacks {needle}");
    }
    assert!(
        !body.contains("<script") && !body.contains("src=\"http"),
        "the dashboard loads nothing from elsewhere"
    );
    let (code, _, body) = get("/api/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["resources"]["cpu"]["target_percent"].is_number());
    let (code, _, body) = get("/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("cro_build_info{version=") && body.contains("# TYPE cro_target_ratio gauge")
    );
    let (code, head, _) = http(
        &addr,
        "POST /api/status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(code, 405, "{head}");
    assert!(head.to_lowercase().contains("allow: get, head"), "{head}");
    for method in ["PUT", "DELETE", "PATCH"] {
        assert_eq!(
            http(
                &addr,
                &format!("{method} / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            )
            .0,
            405
        );
    }
    let (code, _, body) = http(
        &addr,
        "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(get("/nope").0, 404);
    // garbage and a half request must not take the server down
    let _ = http(&addr, "\x00\x01garbage\r\n\r\n");
    let _ = http(&addr, "GET / HTTP/1.1\r\nHost");
    assert_eq!(
        get("/metrics").0,
        200,
        "the server must survive malformed requests"
    );
}

#[test]
fn html_report_is_self_contained_with_charts_and_verdicts() {
    let e = Env::new();
    e.desired(r#"{"version":1,"window_days":3,"cpu":{"target_percent":25},"memory":{"target_percent":90,"min_available_percent":5},"disk":{"enabled":false}}"#);
    e.write_history(3 * 288, 300.0, r#""cpu":{"total":30.0,"synthetic":20.0,"level":30.0,"target":25.0},"memory":{"total":20.0,"synthetic":0.0,"level":0.0,"target":90.0}"#);
    let out = e.path().join("report.html");
    e.ok(&["report", "--html", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "one chart per resource");
    // the cost of compliance: 20 % of this host's CPUs over the 3 recorded days
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let want = format!(
        "cpu: {} CPU core-hours (20 % of the cpu over the recorded time)",
        (0.2 * cpus * 72.0 * 100.0).round() / 100.0
    );
    assert!(html.contains(&want), "report lacks {want:?}");
    assert!(
        html.contains("memory: 0 GiB-hours (0 % of the memory"),
        "no synthetic memory: no cost"
    );
    for needle in [
        "class=\"organic\"",
        "class=\"synthetic\"",
        "class=\"target\"",
        "class=\"running\"",
        "cpu: COMPLIANT",
        "memory: NOT COMPLIANT",
        "<table",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    for bad in [
        "<script", "<link", "<img", "@import", "url(", "src=", "href=",
    ] {
        assert!(
            !html.contains(bad),
            "the report must load nothing: found {bad}"
        );
    }
}

/// The metrics and the alert rules pass Prometheus's own checker. CI installs it (Debian's
/// prometheus package); without it this test fails and says so.
#[test]
fn promtool_accepts_metrics_and_alert_rules() {
    let promtool = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    assert!(
        promtool.is_ok(),
        "promtool not found: apt-get install prometheus (CI does)"
    );
    let e = Env::new();
    let dir = e.path().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&[
        "reconcile",
        "--once",
        "--textfile-dir",
        dir.to_str().unwrap(),
    ]);
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(dir.join("cro.prom")).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("promtool")
        .args([
            "check",
            "rules",
            "prometheus-alerts.yml",
            "prometheus-rules.yml",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // and they fire when they should (failing passes, vanished metrics), not otherwise;
    // the fleet's recording rules count hosts per state as `cro fleet` does
    let out = std::process::Command::new("promtool")
        .args([
            "test",
            "rules",
            "prometheus-alerts.test.yml",
            "prometheus-rules.test.yml",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dash = grafana_dashboard();
    assert!(dash["panels"].as_array().unwrap().len() >= 5);
}

/// The PNG's width, from its IHDR chunk.
fn png_width(png: &[u8]) -> u32 {
    u32::from_be_bytes(png[16..20].try_into().unwrap())
}

/// The dashboard as a browser sees it: headless Chromium (Debian's chromium; CI installs
/// it) takes a screenshot (desktop and phone) and dumps the rendered DOM, which must hold
/// the charts with a day of history in them.
#[test]
fn dashboard_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let chromium =
        chromium.expect("headless Chromium not found: apt-get install chromium (CI does)");
    let e = Env::new();
    // a day of history every 5 minutes: organic 10 %, cro's 15 % on top (paused now, so
    // no load while the other tests run)
    e.desired(
        &Desired::idle(&e.plain_mount())
            .set("/cpu/target_percent", 25)
            .set("/paused", true)
            .text(),
    );
    e.write_history(
        288,
        300.0,
        r#""cpu":{"total":25.0,"synthetic":15.0,"level":25.0,"target":25.0}"#,
    );
    let (_server, addr) = serve_idle_as_is(&e);
    let shot = e.path().join("dashboard.png");
    let browse_at = |size: &str, extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--window-size={size}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap()
    };
    let browse = |extra: &[&str]| browse_at("1200,700", extra);
    browse(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "screenshot is {} bytes",
        png.len()
    );
    // and as a phone shows it (390 px wide): the page must not be wider than the screen
    let phone = e.path().join("phone.png");
    let out = browse_at("390,1400", &[&format!("--screenshot={}", phone.display())]);
    let png = std::fs::read(&phone).unwrap_or_else(|_| panic!("no phone screenshot: {out:?}"));
    assert_eq!(png_width(&png), 390);
    let dom = String::from_utf8_lossy(&browse(&["--dump-dom"]).stdout).to_string();
    // the 24-hour chart: a bar per 5 minutes recorded (288, and the pass's own record)
    let day24 = dom
        .split("class=\"chart day24\"")
        .nth(1)
        .expect("a 24-hour chart");
    let day24 = &day24[..day24.find("</svg>").unwrap()];
    let bars = day24.matches("class=\"organic\"").count();
    assert!(
        (280..=300).contains(&bars),
        "{bars} bars in the 24-hour chart"
    );
    assert!(day24.matches("class=\"synthetic\"").count() >= 280);
    for needle in [
        "<svg",
        "class=\"organic\"",
        "class=\"synthetic\"",
        "class=\"target\"",
        "class=\"level\"",
        "class=\"running\"",
        "class=\"sentence\"",
        "against a target of 25 % (mean)",
        "id=\"resources\"",
        "id=\"jobs\"",
    ] {
        assert!(
            dom.contains(needle),
            "rendered dashboard lacks {needle}:\n{dom:.500}"
        );
    }
}

/// The bad-input corpus (tests/bad-desired/, one file per kind of mistake, expected.tsv
/// says what the message must name), plus cases made at run time: binary bytes, a very
/// large file, a symlinked mount, a mount that is a file. Each: exit 78, the file's path
/// and the field in the message, and nothing written.
#[test]
fn bad_input_corpus_is_refused_with_file_and_field() {
    let e = Env::new();
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad-desired"));
    let expected = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut cases: Vec<(std::path::PathBuf, String)> = expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, needle) = l.split_once('\t').unwrap();
            (dir.join(f), needle.to_string())
        })
        .collect();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let files_in_dir = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(
        files_in_dir,
        cases.len(),
        "every corpus file is listed in expected.tsv"
    );
    // made at run time
    let made = e.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    std::fs::write(
        made.join("binary.json"),
        [0x7f, b'E', b'L', b'F', 0, 0xff, 0xfe, 1, 2, 3],
    )
    .unwrap();
    cases.push((made.join("binary.json"), "UTF-8".into()));
    let mut big = String::from("{\"version\": 1, \"paused\": ");
    big.push_str(&" ".repeat(20 << 20));
    big.push_str("tru}");
    std::fs::write(made.join("huge.json"), big).unwrap();
    cases.push((made.join("huge.json"), "at most 1048576".into()));
    std::os::unix::fs::symlink("/tmp", made.join("linked-mount")).unwrap();
    std::fs::write(
        made.join("symlinked-mount.json"),
        format!(
            r#"{{"version":1,"disk":{{"mounts":["{}"]}}}}"#,
            made.join("linked-mount").display()
        ),
    )
    .unwrap();
    cases.push((made.join("symlinked-mount.json"), "symlink".into()));
    std::fs::write(made.join("a-file"), "").unwrap();
    std::fs::write(
        made.join("file-mount.json"),
        format!(
            r#"{{"version":1,"disk":{{"mounts":["{}"]}}}}"#,
            made.join("a-file").display()
        ),
    )
    .unwrap();
    cases.push((made.join("file-mount.json"), "disk.mounts[0]".into()));
    for (file, needle) in &cases {
        let r = e.run(&["validate", file.to_str().unwrap()]);
        assert_eq!(r.code, 78, "{}: {r:?}", file.display());
        assert!(
            r.stderr.contains(file.to_str().unwrap()),
            "{} must be named: {r:?}",
            file.display()
        );
        assert!(
            r.stderr.contains(needle.as_str()),
            "{}: the message must mention {needle:?}: {r:?}",
            file.display()
        );
    }
    assert!(!e.state().exists(), "validate writes nothing");
}

/// Invariant 10: the daemon ticks every `interval_seconds` whoever reads its files (a
/// person's `cat`, `status`, its own metrics pass); only a change of content is a change
/// (one extra tick each), a touch or an identical rewrite none.
#[test]
fn daemon_ticks_at_its_interval_whoever_reads_its_files() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = Env::new();
    let m = e.plain_mount();
    // extra: a cpu field to add (name, value), or none
    let with = |interval: u32, extra: Option<(&str, f64)>| {
        let doc = Desired::idle(&m).set("/interval_seconds", interval);
        match extra {
            Some((k, v)) => doc.set(&format!("/cpu/{k}"), v).text(),
            None => doc.text(),
        }
    };
    e.desired(&with(2, None));
    let textfile = e.path().join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let d = e.daemon(&["--textfile-dir", textfile.to_str().unwrap()]);
    wait_for(Duration::from_secs(15), "the first tick", || {
        (e.history_lines() >= 1).then_some(())
    });
    let (t0, n0) = (Instant::now(), e.history_lines());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::read(e.desired_path());
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                e.ok(&["status", "--json"]);
            }
        });
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
    });
    // ... and after the readers stop, too
    std::thread::sleep(Duration::from_secs(4));
    let ticks = (e.history_lines() - n0) as f64;
    let expected = t0.elapsed().as_secs_f64() / 2.0;
    assert!(
        (ticks - expected).abs() <= 1.0,
        "{ticks} ticks in {:.1} s at a 2 s interval (expected {expected:.1} +-1)",
        t0.elapsed().as_secs_f64()
    );
    // A long interval from here on, so any tick below is one a change caused.
    e.desired(&with(30, None));
    std::thread::sleep(Duration::from_secs(3));
    let base = e.history_lines();
    let f = std::fs::File::options()
        .write(true)
        .open(e.desired_path())
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    e.desired(&with(30, None)); // same bytes, by rename
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        e.history_lines(),
        base,
        "a touch or identical rewrite ticked"
    );
    e.desired(&with(30, Some(("max_synthetic_percent", 50.0))));
    // the tick comes (deadline, not a fixed sleep); then no second one follows
    wait_for(Duration::from_secs(10), "the tick of the edit", || {
        (e.history_lines() > base).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        e.history_lines(),
        base + 1,
        "one edit must make exactly one tick"
    );
    // SIGHUP (systemctl reload) reads the file again: nothing changed, no tick
    send_signal(d.0.id() as i32, rustix::process::Signal::HUP);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        e.history_lines(),
        base + 1,
        "a reload of an unchanged file ticked"
    );
    let log = d.stop();
    assert_eq!(
        log.matches("desired state changed").count(),
        2,
        "two real changes (interval, then cpu): {log}"
    );
    assert!(
        log.contains("SIGHUP: reading the desired file again"),
        "{log}"
    );
}

/// Invariant 7: one cro per host. A pass from a second state directory is refused (exit
/// 1, naming the first) and starts nothing, while read-only commands still work; once the
/// first is recovered the second may take the host.
#[test]
fn a_second_state_directory_is_refused_until_the_first_is_recovered() {
    let a = Env::new();
    let b = Env::new();
    let host = a.path().join("run"); // a's run directory is this "host"
    let on_host = |e: &Env, args: &[&str]| {
        let o = e
            .cmd()
            .env("CRO_RUN_DIR", &host)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    a.desired(&idle_desired(&a.plain_mount()));
    b.desired(&idle_desired(&b.plain_mount()));
    assert_eq!(on_host(&a, &["reconcile", "--once"]).0, 0);
    three_workers(&a);
    let (code, err) = on_host(&b, &["reconcile", "--once"]);
    assert_eq!(code, 1, "{err}");
    let holder = std::fs::canonicalize(a.state()).unwrap();
    assert!(
        err.contains(&holder.display().to_string()),
        "must name the holder: {err}"
    );
    assert!(
        b.workers().is_empty() && b.job_files().is_empty(),
        "b started something"
    );
    // the daemon is refused the same way
    let (code, err) = on_host(&b, &["reconcile"]);
    assert_eq!(code, 1, "{err}");
    for ro in [&["status"][..], &["plan"], &["validate"]] {
        assert_eq!(on_host(&b, ro).0, 0, "{ro:?} needs no claim");
    }
    assert_eq!(on_host(&a, &["recover"]).0, 0);
    assert_eq!(on_host(&b, &["reconcile", "--once"]).0, 0);
    three_workers(&b);
    assert_eq!(on_host(&b, &["recover"]).0, 0);
}

/// `reconcile --once` says each action once: on stdout (data), not again in the log.
#[test]
fn reconcile_once_prints_each_action_once() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    let o = e
        .cmd()
        .env("RUST_LOG", "info")
        .args(["reconcile", "--once"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(actions.len(), 6, "write + start for three jobs: {out}");
    for a in actions {
        assert_eq!(
            format!("{out}{err}").matches(a).count(),
            1,
            "{a:?} twice:\n{out}\n{err}"
        );
    }
    three_workers(&e);
}

/// Worker logs are bounded: a full log is rotated (generations kept, never more than
/// three), and a log path that is a symlink is refused rather than followed.
#[test]
fn worker_logs_are_rotated_and_never_followed_through_a_symlink() {
    let e = Env::new();
    let logs = e.state().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("cpu.log"), vec![b'x'; 2 << 20]).unwrap();
    for n in 1..=3 {
        std::fs::write(logs.join(format!("cpu.log.{n}")), format!("gen {n}")).unwrap();
    }
    let outside = e.path().join("precious.txt");
    std::fs::write(&outside, "keep").unwrap();
    std::os::unix::fs::symlink(&outside, logs.join("memory.log")).unwrap();
    e.desired(&idle_desired(&e.plain_mount()));
    let r = e.run(&["reconcile", "--once"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    assert!(
        r.stderr.contains("memory.log"),
        "the refused log must be named: {r:?}"
    );
    assert_eq!(
        std::fs::metadata(logs.join("cpu.log.1")).unwrap().len(),
        2 << 20
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("cpu.log.2")).unwrap(),
        "gen 1"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("cpu.log.3")).unwrap(),
        "gen 2"
    );
    assert!(!logs.join("cpu.log.4").exists());
    assert!(std::fs::metadata(logs.join("cpu.log")).unwrap().len() < 4096);
}

/// A 14-day window with 10 days of history: the 4 days before the first record count as
/// 0 % by default, in status, the report and the metrics alike; `ignore` judges the
/// recorded time only.
#[test]
fn time_before_the_first_record_is_judged_the_same_everywhere() {
    for (rule, coverage, compliant) in [("zero", 10.0 / 14.0, false), ("ignore", 1.0, true)] {
        let e = Env::new();
        e.desired(&format!(r#"{{"version":1,"window_days":14,"before_first_record":"{rule}","cpu":{{"target_percent":25}},"memory":{{"enabled":false}},"disk":{{"enabled":false}}}}"#));
        e.write_history(
            10 * 144,
            600.0,
            r#""cpu":{"total":30.0,"synthetic":0.0,"level":0.0,"target":25.0}"#,
        );
        let w = e.status()["resources"]["cpu"]["window"].clone();
        assert!(
            (w["coverage"].as_f64().unwrap() - coverage).abs() < 0.01,
            "{rule}: {w}"
        );
        assert_eq!(w["compliant"].as_bool(), Some(compliant), "{rule}: {w}");
        let html = e.path().join("r.html");
        e.ok(&["report", "--html", html.to_str().unwrap()]);
        let page = std::fs::read_to_string(&html).unwrap();
        let verdict = if compliant {
            "cpu: <span class=\"ok\">COMPLIANT"
        } else {
            "cpu: <span class=\"bad\">NOT COMPLIANT"
        };
        assert!(
            page.contains(verdict),
            "{rule}: report disagrees with status"
        );
        assert!(
            page.contains(&format!("coverage {:.1} % of the window", coverage * 100.0)),
            "{rule}: report coverage"
        );
        let textfile = e.path().join("prom");
        std::fs::create_dir_all(&textfile).unwrap();
        e.ok(&[
            "reconcile",
            "--once",
            "--textfile-dir",
            textfile.to_str().unwrap(),
        ]);
        let prom = std::fs::read_to_string(textfile.join("cro.prom")).unwrap();
        let line = prom
            .lines()
            .find(|l| l.starts_with("cro_window_coverage_ratio{resource=\"cpu\""))
            .unwrap_or_else(|| panic!("{prom}"));
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((v - coverage).abs() < 0.01, "{rule}: {line}");
    }
}

/// The yielding itself, read from the kernel by the test: every CPU burner thread is
/// SCHED_IDLE and sits in a cgroup whose cpu.idle is 1 (where the host offers cpu.idle;
/// else its autogroup is nice 19), the memory worker's oom_score_adj is 1000, the disk
/// worker's I/O class is idle; status names the CPU placement; recover removes the group.
#[test]
fn workers_yield_by_the_kernel_mechanisms_they_claim() {
    let e = Env::new();
    let (_, ws) = e.start_idle();
    let pid = |id: &str| ws.iter().find(|(i, _)| i == id).unwrap().1;
    // Does this host offer cpu.idle? (v1 cpu controller here; v2 root otherwise)
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_cpu = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let opts = right.split_whitespace().nth(2)?;
        (right.starts_with("cgroup ") && opts.split(',').any(|o| o == "cpu"))
            .then(|| left.split_whitespace().nth(4).unwrap().to_string())
    });
    let v1_cpu =
        v1_cpu.expect("this test knows cgroup v1 hosts (like CI's); extend it for pure v2");
    let idle_offered = std::path::Path::new(&v1_cpu).join("cpu.idle").exists();
    let cpu = pid("cpu");
    // What each burner thread shows: (policy, its cpu cgroup path, cpu.idle there).
    let burners_now = || -> Vec<(String, String, String, String)> {
        let mut v = vec![];
        for t in std::fs::read_dir(format!("/proc/{cpu}/task"))
            .unwrap()
            .flatten()
        {
            let tid = t.file_name().into_string().unwrap();
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("cro-burn") {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            let cg = std::fs::read_to_string(t.path().join("cgroup")).unwrap();
            let path = cg
                .lines()
                .find_map(|l| {
                    let mut p = l.splitn(3, ':');
                    let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
                    ctrls
                        .split(',')
                        .any(|c| c == "cpu")
                        .then(|| path.to_string())
                })
                .unwrap();
            let dir = format!("{v1_cpu}{path}");
            let idle = std::fs::read_to_string(format!("{dir}/cpu.idle")).unwrap_or_default();
            v.push((tid, f[38].to_string(), dir, idle.trim().to_string()));
        }
        v
    };
    // Threads move themselves in as they start: give them a moment.
    let burners = wait_for_or(
        Duration::from_secs(5),
        || {
            let b = burners_now();
            (!b.is_empty()
                && b.iter()
                    .all(|(_, pol, _, idle)| pol == "5" && (!idle_offered || idle == "1")))
            .then_some(b)
        },
        || {
            format!(
                "every burner SCHED_IDLE (5){}: {:?}",
                if idle_offered {
                    " in a cpu.idle=1 group"
                } else {
                    ""
                },
                burners_now()
            )
        },
    );
    let group = idle_offered.then(|| burners[0].2.clone());
    let st = e.status();
    let mode = st["host"]["cpu_placement"]["mode"]
        .as_str()
        .unwrap()
        .to_string();
    if idle_offered {
        assert_eq!(mode, "cgroup-idle", "{}", st["host"]);
    } else {
        assert_eq!(mode, "autogroup", "{}", st["host"]);
        let ag = std::fs::read_to_string(format!("/proc/{cpu}/autogroup")).unwrap();
        assert!(ag.trim_end().ends_with("nice 19"), "{ag}");
    }
    let oom = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", pid("memory"))).unwrap();
    assert_eq!(oom.trim(), "1000");
    let disk = ws.iter().find(|(i, _)| i.starts_with("disk")).unwrap().1;
    // ioprio_get(IOPRIO_WHO_PROCESS, pid): class in the top bits; 3 = idle
    // SAFETY: ioprio_get takes two integers; no memory is passed.
    let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, disk) };
    assert_eq!(
        prio >> 13,
        3,
        "disk worker I/O priority {prio:#x} is not the idle class"
    );
    e.ok(&["recover"]);
    if let Some(dir) = group {
        assert!(!std::path::Path::new(&dir).exists(), "recover left {dir}");
    }
}

/// What a newcomer can trigger names the problem and the fix, and surprises are gone: a
/// named but missing desired file is exit 78 (never the built-in default) and starts
/// nothing; type and syntax errors speak the file's terms; a bad trace is a trace error;
/// a --state-dir that is a file is named as the option; the internal worker is offered by
/// no completion; status says "not running" / "cannot pad" rather than "on track"; plan
/// shows the level it would write in the host's terms.
#[test]
fn messages_and_status_say_what_is_true() {
    let e = Env::new();
    let missing = e.path().join("typo/desired.json");
    for args in [
        &["plan"][..],
        &["status"],
        &["reconcile", "--once"],
        &["reconcile"],
    ] {
        let r = Run::from_output(
            e.cmd()
                .arg("--desired")
                .arg(&missing)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap(),
        );
        assert_eq!(r.code, 78, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(&missing.display().to_string())
                && r.stderr.contains("does not exist"),
            "{r:?}"
        );
    }
    assert!(
        e.workers().is_empty() && e.job_files().is_empty(),
        "a missing named file started something"
    );

    let bad = e.path().join("bad.json");
    std::fs::write(&bad, r#"{"version":1,"cpu":{"target_percent":"25%"}}"#).unwrap();
    let r = e.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 78);
    assert!(
        r.stderr.contains("cpu.target_percent") && r.stderr.contains("a number such as 25"),
        "{r:?}"
    );
    std::fs::write(&bad, "{\"version\":1,\n\"cpu\":{\"target_percent\":25,}}").unwrap();
    let r = e.run(&["validate", bad.to_str().unwrap()]);
    assert!(
        r.stderr.contains("line 2, column") && !r.stderr.contains(".?"),
        "{r:?}"
    );

    let good = e.path().join("good.json");
    std::fs::write(&good, r#"{"version":1,"cpu":{"statistic":"p95","target_percent":20},"disk":{"mounts":[],"fill":"write"}}"#).unwrap();
    let j = e.ok(&["validate", "--json", good.to_str().unwrap()]).json();
    assert_eq!(j["cpu"]["statistic"], "p95");
    assert_eq!(j["disk"]["fill"], "write");

    let trace = e.path().join("bad.csv");
    std::fs::write(&trace, "x,y\n1,2\n").unwrap();
    let r = e.run(&["simulate", "--trace", trace.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("invalid trace") && !r.stderr.contains("desired state"),
        "{r:?}"
    );

    let r = Run::from_output(
        std::process::Command::new(CRO)
            .args(["--state-dir", "/etc/hostname", "status"])
            .env("CRO_RUN_DIR", e.path().join("run"))
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--state-dir /etc/hostname") && r.stderr.contains("not a directory"),
        "{r:?}"
    );

    for sh in ["bash", "zsh", "fish"] {
        let c = e.ok(&["completions", sh]).stdout;
        assert!(
            !c.lines().any(|l| l.contains("\"worker\"")
                || l.contains(" worker ")
                || l.contains("'worker")),
            "{sh} completions offer the internal worker"
        );
    }

    // status before any pass, and a disk that cannot be padded
    let plain = e.path().join("not-a-mount");
    std::fs::create_dir_all(&plain).unwrap();
    e.desired(&format!(
        r#"{{"version":1,"cpu":{{"target_percent":30}},"memory":{{"enabled":false}},"disk":{{"target_percent":30,"mounts":["{}"]}}}}"#,
        plain.display()
    ));
    let st = e.status();
    assert_eq!(st["resources"]["cpu"]["state"], "not running", "{st}");
    let disk = &st["resources"]["disk"][plain.display().to_string()];
    assert_eq!(disk["state"], "cannot pad", "{disk}");
    let text = e.ok(&["status"]).stdout;
    assert!(
        !text.contains("on track"),
        "nothing runs, nothing is on track:\n{text}"
    );
    assert!(
        text.contains("NOT RUNNING") && text.contains("CANNOT PAD"),
        "{text}"
    );
    let plan = e.ok(&["plan"]).stdout;
    let cpu_line = plan
        .lines()
        .find(|l| l.starts_with("write job cpu"))
        .unwrap();
    assert!(
        cpu_line.contains("CPUs") || cpu_line.contains("level 0"),
        "plan must say what the level means here: {cpu_line}"
    );
}

/// The README's first commands and its desired-state example work as written: the test
/// command is the one CI runs, the main job's dry run (plan) works on the built-in
/// default, the install path (init, validate, plan) works with the paths moved into a
/// temporary directory, and the example file is valid (its /data mount need not exist).
#[test]
fn readme_commands_and_example_work() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```").skip(1).step_by(2).collect();
    let first = blocks[0];
    let mut lines = first.lines().skip(1);
    let run = lines.next().unwrap();
    let test = lines.next().unwrap();
    assert!(
        run.starts_with("cargo run --release -- reconcile --once"),
        "{run}"
    );
    let test_cmd = test.split("   #").next().unwrap().trim();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let ci_cmds: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with("set ") && !l.starts_with("cd ")
        })
        .collect();
    assert_eq!(
        ci_cmds,
        [test_cmd],
        "CI must run exactly the README's test command"
    );
    // the main job on the built-in default, as a dry run (the real one would pad)
    let e = Env::new();
    let r = e.ok(&["plan"]);
    assert!(r.stderr.contains("built-in default"), "{r:?}");
    // the install path, with /etc/cro and /var/lib/cro moved under the test directory
    let install = blocks
        .iter()
        .find(|b| b.contains("cro --desired /etc/cro/desired.json init"))
        .unwrap();
    let etc = e.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for l in install
        .lines()
        .filter(|l| l.starts_with("cro --") && !l.contains("completions"))
    {
        let cmdline = l.split("  #").next().unwrap().trim();
        let args: Vec<String> = cmdline
            .split_whitespace()
            .skip(1)
            .map(|a| {
                a.replace("/etc/cro", etc.to_str().unwrap())
                    .replace("/var/lib/cro", e.state().to_str().unwrap())
            })
            .collect();
        let o = std::process::Command::new(CRO)
            .args(&args)
            .env("CRO_RUN_DIR", e.path().join("run"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "README: {cmdline}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // the desired-state example
    let example = blocks
        .iter()
        .find(|b| b.starts_with("json") && b.contains("\"tiers\""))
        .unwrap()
        .trim_start_matches("json");
    let f = e.path().join("example.json");
    std::fs::write(&f, example).unwrap();
    let j = e
        .ok(&[
            "validate",
            "--no-mount-check",
            "--json",
            f.to_str().unwrap(),
        ])
        .json();
    assert_eq!(j["disk"]["target_percent"], 30.0, "{j}");
}

/// A hostile desired file costs little: 64 KiB of nested brackets (which took 6.4 GB
/// before the depth cap) is refused with exit 78 inside a 256 MiB address space, and a
/// file over 1 MiB is refused without being read whole.
#[test]
fn hostile_desired_files_are_refused_cheaply() {
    let e = Env::new();
    let deep = e.path().join("deep.json");
    std::fs::write(&deep, "[".repeat(64 << 10)).unwrap();
    let wide = e.path().join("wide.json");
    let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":1")).collect();
    std::fs::write(&wide, format!("{{\"version\":1,{}}}", keys.join(","))).unwrap();
    let big = e.path().join("big.json");
    std::fs::write(&big, " ".repeat((1 << 20) + 10)).unwrap();
    for (f, says) in [(&deep, "line 1"), (&wide, "k0"), (&big, "at most 1048576")] {
        let mut cmd = e.cmd();
        cmd.args(["validate", f.to_str().unwrap()]);
        limit_address_space(&mut cmd, 256 << 20);
        let r = Run::from_output(cmd.output().unwrap());
        assert_eq!(r.code, 78, "{}: {r:?}", f.display());
        assert!(r.stderr.contains(says), "{}: {r:?}", f.display());
    }
}

/// Invariant 9: root trusts no directory another user can write. A state directory
/// writable by others, a jobs directory owned by someone else or replaced by a symlink:
/// reconcile and recover exit 1 naming the path and the fix, and start nothing.
#[test]
fn a_state_tree_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    let state = e.state();
    let jobs = state.join("jobs");
    let refused = |what: &str, path: &std::path::Path| {
        for args in [&["reconcile", "--once"][..], &["recover"]] {
            let r = e.run(args);
            assert_eq!(r.code, 1, "{what}: {args:?}: {r:?}");
            assert!(
                r.stderr.contains(&path.display().to_string())
                    && r.stderr.contains("will not trust"),
                "{what}: {r:?}"
            );
        }
        assert!(e.workers().is_empty(), "{what}: something started");
    };
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused("world-writable state dir", &state);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(&jobs).unwrap();
    std::os::unix::fs::chown(&jobs, Some(65534), Some(65534)).unwrap();
    refused("jobs dir owned by nobody", &jobs);
    std::fs::remove_dir(&jobs).unwrap();
    let elsewhere = e.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &jobs).unwrap();
    refused("jobs dir replaced by a symlink", &jobs);
    std::fs::remove_file(&jobs).unwrap();
    // put right, it works, and what cro creates is closed to others
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
    for d in ["jobs", "logs", "history"] {
        let mode = std::fs::metadata(state.join(d))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{d}");
    }
}

/// Invariant 9 for ballast: a `.cro-ballast` planted by another user is refused (status
/// says "cannot pad" and names it; nothing is written there; recover leaves it and says
/// so, in bounded time); inside our own, a FIFO or a hard link in the place of a ballast
/// file is never opened for writing, and nothing blocks.
#[test]
fn planted_ballast_directories_and_files_are_refused() {
    let e = Env::new();
    let m = e.plain_mount();
    let bdir = m.join(".cro-ballast");
    std::fs::create_dir_all(&bdir).unwrap();
    let victim = e.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::fs::hard_link(&victim, bdir.join("ballast-000000.bin")).unwrap();
    std::os::unix::fs::chown(&bdir, Some(65534), Some(65534)).unwrap();
    let desired = |pct: u32| {
        format!(
            r#"{{"version":1,"cpu":{{"enabled":false}},"memory":{{"enabled":false}},"disk":{{"target_percent":{pct},"min_free_gib":0,"allow_plain_directory":true,"mounts":["{}"]}}}}"#,
            m.display()
        )
    };
    // a level the plain directory's filesystem is already above: no real filling
    e.desired(&desired(1));
    e.ok(&["reconcile", "--once"]);
    let st = e.status();
    let d = &st["resources"]["disk"][m.display().to_string()];
    assert_eq!(d["state"], "cannot pad", "{d}");
    assert!(
        d["state_note"].as_str().unwrap().contains(".cro-ballast"),
        "{d}"
    );
    let t = std::time::Instant::now();
    let r = e.run(&["recover"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "recover took {:?}",
        t.elapsed()
    );
    assert!(
        r.stderr.contains(".cro-ballast"),
        "recover must say what it left: {r:?}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(
        bdir.join("ballast-000000.bin").exists(),
        "a planted directory is not ours to empty"
    );

    // our own directory, with a FIFO and a hard link where ballast files go
    std::fs::remove_file(bdir.join("ballast-000000.bin")).unwrap();
    std::os::unix::fs::chown(&bdir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&bdir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        bdir.join("ballast-000000.bin"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // a level that wants ballast: the worker must try, and not block
    let used = oracle::used_percent(&m);
    e.desired(&desired((used + 0.2).ceil().min(99.0) as u32));
    e.ok(&["reconcile", "--once"]);
    let id = e
        .job_files()
        .into_iter()
        .find(|j| j.starts_with("disk"))
        .unwrap();
    let id = id.trim_end_matches(".json").to_string();
    wait_for(
        Duration::from_secs(10),
        "the disk worker to report the refused file",
        || {
            e.job_status(&id).filter(|s| {
                s["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("ballast-000000.bin"))
                    || s["updated_at"].as_f64().is_some()
            })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = e.job_status(&id).unwrap();
    assert_eq!(
        s["ballast_bytes"].as_u64(),
        Some(0),
        "nothing may be held through a FIFO: {s}"
    );
    let t = std::time::Instant::now();
    e.ok(&["recover"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "recover took {:?}",
        t.elapsed()
    );
    assert!(
        !bdir.exists(),
        "our own directory, FIFO and all, is removed"
    );
}

/// The dashboard is safer for a browser on the host: every response forbids scripts,
/// framing and sniffing; a request whose Host is another name (DNS rebinding) is refused
/// (421), while the bound address, localhost and no Host at all (HTTP/1.0) are served;
/// a mount path with markup is escaped. (The per-client cap is a unit test in serve.rs:
/// on loopback every client has the same address.)
#[test]
fn the_dashboard_resists_a_hostile_browser() {
    let e = Env::new();
    let odd = e.path().join("d<x>&y");
    std::fs::create_dir_all(&odd).unwrap();
    e.desired(&idle_desired(&odd));
    let (_server, addr) = serve_idle_as_is(&e);
    let req = |host: &str| {
        http(
            &addr,
            &format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    for host in [
        addr.as_str(),
        "localhost",
        &format!("localhost:{}", addr.rsplit(':').next().unwrap()),
    ] {
        let (code, head, _) = req(host);
        assert_eq!(code, 200, "Host {host}: {head}");
        let h = head.to_lowercase();
        for needle in [
            "content-security-policy: default-src 'none'",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
        ] {
            assert!(h.contains(needle), "{needle} missing: {head}");
        }
    }
    for host in [
        "evil.example",
        "evil.example:9477",
        "127.0.0.1.evil.example",
    ] {
        assert_eq!(req(host).0, 421, "Host {host} must be refused");
    }
    assert_eq!(
        http(&addr, "GET / HTTP/1.0\r\n\r\n").0,
        200,
        "no Host at all"
    );
    let (_, _, page) = http(
        &addr,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !page.contains("d<x>&y") && page.contains("d&lt;x&gt;&amp;y"),
        "unescaped mount path: {page}"
    );
}

/// recover's scope: in one state directory it leaves another's workers, ballast, history
/// and desired file alone; a process that looks like a worker (an executable named cro,
/// run as `cro worker --job ...`) but holds no job lock is never signalled.
#[test]
fn recover_touches_only_its_own_state_directory() {
    let a = Env::new();
    let b = Env::new();
    let (ma, _) = a.start_idle();
    let (mb, wb) = b.start_idle();
    std::fs::write(mb.join(".cro-ballast/marker"), "b's").unwrap();
    let b_history = b.history_lines();
    assert!(b_history >= 1);
    // a look-alike: python3 copied as `cro`, running a script named `worker`
    let fake_dir = a.path().join("fake");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    std::fs::copy(&python, fake_dir.join("cro")).unwrap();
    std::fs::write(fake_dir.join("worker"), "import time\ntime.sleep(60)\n").unwrap();
    let mut fake = std::process::Command::new(fake_dir.join("cro"))
        .args(["worker", "--job"])
        .arg(a.state().join("jobs/cpu.json"))
        .current_dir(&fake_dir)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    a.ok(&["recover"]);
    // (the test's own worker finder goes by the command line: only the look-alike is left)
    assert!(
        a.workers().iter().all(|(_, p)| *p == fake.id() as i32),
        "{:?}",
        a.workers()
    );
    assert!(!ma.join(".cro-ballast").exists());
    assert!(
        fake.try_wait().unwrap().is_none(),
        "recover signalled a process holding no job lock"
    );
    let _ = fake.kill();
    let _ = fake.wait();
    assert_eq!(b.workers(), wb, "a's recover stopped b's workers");
    assert_eq!(
        std::fs::read_to_string(mb.join(".cro-ballast/marker")).unwrap(),
        "b's"
    );
    assert_eq!(b.history_lines(), b_history);
    assert!(b.desired_path().exists());
}

/// `recover --dry-run` on a state that holds something changes nothing: the same workers
/// (same PIDs), the same job files, the same ballast on disk (the test's own count of
/// st_blocks). A dry run that deleted everything would fail here, not only on a clean
/// state. The real recover then reports the same "before" as the dry run.
#[test]
fn recover_dry_run_on_a_live_state_changes_nothing() {
    let mut e = Env::new();
    let m = e.tmpfs(64);
    e.desired(&Desired::idle(&m).set("/disk/target_percent", 30).text());
    e.ok(&["reconcile", "--once"]);
    // steady: the same ballast for a second (the worker has reached its level)
    let mut last = (0, Instant::now());
    wait_for(
        Duration::from_secs(20),
        "steady ballast on the tmpfs",
        || {
            let b = common::oracle::ballast_on_disk(&m);
            if b != last.0 {
                last = (b, Instant::now());
            }
            (b > 8 << 20 && last.1.elapsed() > Duration::from_secs(1)).then_some(())
        },
    );
    let jobs = || {
        let mut v: Vec<String> = std::fs::read_dir(e.state().join("jobs"))
            .unwrap()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = (e.workers(), jobs(), common::oracle::ballast_on_disk(&m));
    assert_eq!(before.0.len(), 3, "three workers: {before:?}");
    let dry = e.ok(&["recover", "--dry-run"]);
    assert!(dry.stdout.contains("dry run"), "{dry:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.workers(), before.0, "the dry run stopped workers");
    assert!(before.0.iter().all(|(_, pid)| pid_alive(*pid)));
    assert_eq!(jobs(), before.1, "the dry run touched job files");
    assert_eq!(
        common::oracle::ballast_on_disk(&m),
        before.2,
        "the dry run touched ballast"
    );
    let real = e.ok(&["recover"]);
    let holdings = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("before: "))
            .and_then(|l| l.split("; cpu").next())
            .map(str::to_string)
    };
    assert_eq!(
        holdings(&dry.stdout),
        holdings(&real.stdout),
        "{dry:?}\n{real:?}"
    );
    assert!(e.workers().is_empty());
    assert_eq!(common::oracle::ballast_on_disk(&m), 0);
}

/// CentOS 7's kernel (3.10), as tests/tools/oldkernel.py makes it: every system call newer
/// than 3.10 answers ENOSYS (no pidfd_open, no statx, no getrandom), MADV_FREE is refused
/// and /proc/pressure is hidden, for cro and every worker it starts. The fallbacks carry
/// it: memory ballast is held and given back by MemAvailable alone (status says PSI is
/// missing), disk ballast reaches its level (statvfs read by the test), and recover stops
/// every worker with kill(2) instead of a pidfd and leaves nothing.
#[test]
fn an_old_kernel_without_pidfd_or_psi_is_served_by_the_fallbacks() {
    let mut e = Env::new();
    // the tool itself must work here, or this test proves nothing
    let probe = std::process::Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/oldkernel.py"
        ))
        .args(["--no-psi", "sh", "-c", "test ! -e /proc/pressure/memory"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "tests/tools/oldkernel.py must run here (root, python3-seccomp; .ci/run installs \
         it): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let m = e.tmpfs(64);
    let (total, avail) = common::oracle::meminfo();
    let mem_level = ((total - avail + (200 << 20)) as f64 / total as f64 * 100.0).min(90.0);
    e.desired(
        &Desired::idle(&m)
            .set(
                "/memory/target_percent",
                (mem_level * 100.0).round() / 100.0,
            )
            .set("/memory/min_available_percent", 5)
            .set("/disk/target_percent", 50)
            .text(),
    );
    let r = e.run_old_kernel(&["reconcile", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let ws = wait_for(Duration::from_secs(10), "three workers", || {
        let w = e.workers();
        (w.len() == 3).then_some(w)
    });
    let mem_pid = ws.iter().find(|w| w.0 == "memory").unwrap().1;
    wait_for(
        Duration::from_secs(30),
        "memory ballast and the disk level",
        || {
            let rss = std::fs::read_to_string(format!("/proc/{mem_pid}/status"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()?
                * 1024;
            (rss > 100 << 20 && common::oracle::used_percent(&m) > 45.0).then_some(())
        },
    );
    let st = e.run_old_kernel(&["status"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(
        st.stdout
            .contains("memory pressure (PSI): not reported by this kernel"),
        "{}",
        st.stdout
    );
    let json = e.run_old_kernel(&["status", "--json"]).json();
    assert_eq!(json["host"]["memory_psi"], false, "{}", json["host"]);
    let r = e.run_old_kernel(&["recover"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(e.workers().is_empty(), "recover left workers: {r:?}");
    for (_, pid) in &ws {
        assert!(!pid_alive(*pid), "worker {pid} survived recover");
    }
    assert_eq!(common::oracle::ballast_on_disk(&m), 0);
}

/// Moving over, step one: `cro init --from-env` turns the original tool's config/.env
/// (inline comments, ${VAR} references) into a desired state with the same tiers, window,
/// interval and disk path, and names every key it did not carry over with the reason. An
/// invalid value refuses the conversion, naming the key, and writes nothing.
#[test]
fn init_from_the_original_tools_env() {
    let e = Env::new();
    let data = e.plain_mount();
    let env = e.path().join("dot.env");
    std::fs::write(
        &env,
        format!(
            "# 内存规格定义\nSMALL_MEMORY_MAX=8          # 小规格内存上限(GB)\nLARGE_MEMORY_MIN=16\n\
             TARGET_UTILIZATION_SMALL=25 # (%)\nTARGET_UTILIZATION_LARGE=40\nMONITOR_PERIOD_DAYS=15\n\
             CHECK_INTERVAL_SECONDS=120\nDATA_ROOT={}\nDISK_STRESS_PATH=${{DATA_ROOT}}\n\
             DATA_DISK_ONLY=false\nWORKSPACE_DIR=\nPLATFORM=auto\nGLANCES_ENABLED=true\n\
             LOW_UTIL_THRESHOLD=10\n",
            data.display()
        ),
    )
    .unwrap();
    let r = e.ok(&["init", "--from-env", env.to_str().unwrap()]);
    for (key, why) in [
        ("PLATFORM", "detects"),
        ("GLANCES_ENABLED", "glances"),
        ("LOW_UTIL_THRESHOLD", "window policy"),
        ("WORKSPACE_DIR", "not needed"),
    ] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(&format!("{key} not carried over")) && l.contains(why)),
            "{key}: {}",
            r.stderr
        );
    }
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.desired_path()).unwrap()).unwrap();
    assert_eq!(d["tiers"][0]["target_percent"], 25.0, "{d}");
    assert_eq!(d["tiers"][1]["min_memory_gib"], 16.0);
    assert_eq!(d["tiers"][1]["target_percent"], 40.0);
    assert_eq!(
        (d["window_days"].as_u64(), d["interval_seconds"].as_u64()),
        (Some(15), Some(120))
    );
    assert_eq!(d["disk"]["mounts"][0], data.to_str().unwrap());
    assert_eq!(d["disk"]["allow_plain_directory"], true);
    e.ok(&["validate"]);
    // a value the original would have choked on: refused, nothing written
    let bad = e.path().join("bad.env");
    std::fs::write(&bad, "TARGET_UTILIZATION_SMALL=25%\n").unwrap();
    let before = std::fs::read(e.desired_path()).unwrap();
    let r = e.run(&["init", "--force", "--from-env", bad.to_str().unwrap()]);
    assert_eq!(r.code, 78, "{r:?}");
    assert!(r.stderr.contains("TARGET_UTILIZATION_SMALL"), "{r:?}");
    assert_eq!(std::fs::read(e.desired_path()).unwrap(), before);
}

/// Moving over, step two: `cro recover --legacy --legacy-dir DIR` stops the original tool
/// (python running one of its four scripts; one ignores SIGTERM and gets SIGKILL) and
/// deletes its temp_*.dat files, and nothing else: a process that only mentions a script
/// name, another Python program, other files, and a planted symlink's target survive.
#[test]
fn recover_legacy_stops_the_original_tool_and_only_it() {
    use std::process::{Command, Stdio};
    let e = Env::new();
    let root = e.path().join("CloudResourceOptimizer");
    let scripts = root.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let sleeper = "import time\nwhile True: time.sleep(1)\n";
    let stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)\n";
    for (name, body) in [
        ("dynamic_redundancy.py", sleeper),
        ("cpu_stresser.py", sleeper),
        ("memory_stresser.py", stubborn),
        ("other.py", sleeper),
    ] {
        std::fs::write(scripts.join(name), body).unwrap();
    }
    let spawn = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let s = |n: &str| scripts.join(n).to_str().unwrap().to_string();
    let mut legacy = vec![
        spawn("python3", &[&s("dynamic_redundancy.py")]),
        spawn("python3", &["-u", &s("cpu_stresser.py"), "--threads", "1"]),
        spawn("python3", &[&s("memory_stresser.py"), "64"]),
    ];
    let mut bystanders = vec![
        spawn("python3", &[&s("other.py"), "cpu_stresser.py"]),
        spawn("sh", &["-c", "sleep 60", "cpu_stresser.py"]),
    ];
    let data = e.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("temp_0.dat"), vec![1u8; 1 << 20]).unwrap();
    std::fs::write(data.join("temp_1.dat"), vec![2u8; 1 << 20]).unwrap();
    std::fs::write(data.join("keep.dat"), b"mine").unwrap();
    let outside = e.path().join("precious");
    std::fs::write(&outside, b"not ballast").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("temp_9.dat")).unwrap();
    // the scripts are running (python has started them)
    wait_for(
        Duration::from_secs(10),
        "the original tool's processes",
        || {
            legacy
                .iter()
                .all(|c| {
                    std::fs::read(format!("/proc/{}/cmdline", c.id()))
                        .is_ok_and(|b| b.windows(3).any(|w| w == b".py"))
                })
                .then_some(())
        },
    );
    let dry = e.run(&[
        "recover",
        "--dry-run",
        "--legacy",
        "--legacy-dir",
        data.to_str().unwrap(),
    ]);
    assert!(dry.stdout.contains("legacy: 3 process(es)"), "{dry:?}");
    assert!(
        legacy.iter_mut().all(|c| c.try_wait().unwrap().is_none()),
        "the dry run stopped something"
    );
    let r = e.run(&[
        "recover",
        "--legacy",
        "--legacy-dir",
        data.to_str().unwrap(),
    ]);
    // the planted symlink is a problem worth an exit 1, left in place
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("temp_9.dat is not a regular file"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("legacy: stopped 3 process(es) of the original tool (1 by SIGKILL)"),
        "{r:?}"
    );
    for c in &mut legacy {
        let status = c.wait().unwrap();
        assert!(!status.success(), "{status:?}");
    }
    for c in &mut bystanders {
        assert!(c.try_wait().unwrap().is_none(), "a bystander was stopped");
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(!data.join("temp_0.dat").exists() && !data.join("temp_1.dat").exists());
    assert!(data.join("keep.dat").exists());
    assert!(std::fs::symlink_metadata(data.join("temp_9.dat")).is_ok());
    assert_eq!(std::fs::read(&outside).unwrap(), b"not ballast");
}

/// A kernel without cpu.idle (before 5.15, or a cgroup setup that does not offer it; forced
/// here with CRO_CPU_PLACEMENT=autogroup, as the fallback decides on such hosts): the
/// burners run SCHED_IDLE with their autogroup at nice 19, status says so, and no idle
/// cgroup is made.
#[test]
fn without_cpu_idle_the_burners_fall_back_to_autogroup() {
    let e = Env::new();
    let m = e.plain_mount();
    e.desired(&idle_desired(&m));
    let r = e
        .cmd()
        .env("CRO_CPU_PLACEMENT", "autogroup")
        .args(["reconcile", "--once"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let cpu = wait_for(Duration::from_secs(10), "the cpu worker", || {
        e.workers().into_iter().find(|w| w.0 == "cpu").map(|w| w.1)
    });
    let st = wait_for(Duration::from_secs(10), "the worker's placement", || {
        let st = e.status();
        (st["host"]["cpu_placement"]["mode"] == "autogroup").then_some(st)
    });
    assert!(
        st["host"]["cpu_placement"]["cgroup"].is_null(),
        "{}",
        st["host"]
    );
    let ag = std::fs::read_to_string(format!("/proc/{cpu}/autogroup")).unwrap();
    assert!(ag.trim_end().ends_with("nice 19"), "{ag}");
    // SCHED_IDLE (policy 5) on every burner thread
    let mut burners = 0;
    for t in std::fs::read_dir(format!("/proc/{cpu}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("cro-burn") {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            assert_eq!(f[38], "5", "burner {comm} is not SCHED_IDLE");
            burners += 1;
        }
    }
    assert!(burners > 0, "no burner threads");
    e.ok(&["recover"]);
}

/// `cro explain`: every level in force has a one-line reason, from the same pass status
/// makes. Before any pass: not running, and why. After one (targets 0): the policy's
/// reason, the target and the window; JSON with `resources.<name>.{level_percent, reason}`.
#[test]
fn explain_gives_every_level_a_reason() {
    let e = Env::new();
    let m = e.plain_mount();
    e.desired(&idle_desired(&m));
    let before = e.ok(&["explain"]);
    assert!(
        before
            .stdout
            .contains("cpu: 0.0 % — not running: no pass has run yet"),
        "{before:?}"
    );
    e.ok(&["reconcile", "--once"]);
    three_workers(&e);
    let j = e.ok(&["explain", "--json"]).json();
    let res = j["resources"].as_object().unwrap();
    let disk = format!("disk:{}", m.display());
    for name in ["cpu", "memory", disk.as_str()] {
        let x = &res[name];
        assert_eq!(x["level_percent"], 0.0, "{name}: {x}");
        assert_eq!(x["reason"], "target 0: nothing to hold", "{name}: {x}");
        assert_eq!(x["target_percent"], 0.0);
        assert!(x["coverage"].is_number(), "{name}: {x}");
    }
    let text = e.ok(&["explain"]).stdout;
    assert!(
        text.contains("memory: 0.0 % — target 0: nothing to hold"),
        "{text}"
    );
    assert!(text.contains("target 0.0 % (mean)"), "{text}");
}

/// `cro simulate --from-history`: this host's own recorded organic load (total minus
/// synthetic) replayed under the desired state in force, or another one (`--desired`):
/// the same report as `--trace`. A history too short is a clear error (exit 2).
#[test]
fn simulate_replays_this_hosts_own_history() {
    let e = Env::new();
    let r = e.run(&["simulate", "--from-history"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("at least two"), "{r:?}");
    // three days of passes a minute apart: cpu 50 % total of which 20 synthetic
    e.write_history(
        3 * 1440,
        60.0,
        r#""cpu":{"total":50,"synthetic":20,"level":0,"target":25}"#,
    );
    e.desired(r#"{"version":1,"window_days":3,"cpu":{"target_percent":25},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
    let j: serde_json::Value =
        serde_json::from_str(&e.ok(&["simulate", "--from-history", "--json"]).stdout).unwrap();
    let cpu = &j["resources"]["cpu"];
    // organic 30 % alone meets 25 %: nothing to add, compliant
    assert_eq!(cpu["compliant"], true, "{j}");
    assert_eq!(cpu["cost_percent_hours"], 0.0, "{j}");
    // another desired state on the same load: 40 % costs about 10 points over 3 days
    let other = e.path().join("forty.json");
    std::fs::write(
        &other,
        r#"{"version":1,"window_days":3,"cpu":{"target_percent":40},"memory":{"enabled":false},"disk":{"enabled":false}}"#,
    )
    .unwrap();
    let j: serde_json::Value = serde_json::from_str(
        &e.ok(&[
            "--desired",
            other.to_str().unwrap(),
            "simulate",
            "--from-history",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    let cost = j["resources"]["cpu"]["cost_percent_hours"]
        .as_f64()
        .unwrap();
    assert!((600.0..900.0).contains(&cost), "about 10 % x 72 h: {j}");
    assert_eq!(j["resources"]["cpu"]["compliant"], true, "{j}");
}

/// The cost of compliance: three days of passes with 20 % synthetic CPU and 10 % synthetic
/// memory cost 20 % x 72 h x CPUs core-hours and 10 % x 72 h x GiB GiB-hours, 20 % and 10 %
/// on average; status (text and JSON) and the metrics say so. Oracles: the CPU count from
/// sysconf, MemTotal from /proc/meminfo, both read by the test.
#[test]
fn status_and_metrics_show_what_compliance_cost() {
    let e = Env::new();
    e.write_history(
        3 * 1440,
        60.0,
        r#""cpu":{"total":50,"synthetic":20,"level":50,"target":50},"memory":{"total":40,"synthetic":10,"level":40,"target":40}"#,
    );
    e.desired(r#"{"version":1,"window_days":3,"cpu":{"target_percent":50},"memory":{"target_percent":40},"disk":{"enabled":false}}"#);
    let st = e.status();
    // SAFETY: sysconf takes an integer name; no memory is passed.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as f64;
    let gib = common::oracle::meminfo().0 as f64 / (1u64 << 30) as f64;
    let cpu = &st["resources"]["cpu"]["cost"];
    let want = 0.20 * 72.0 * cpus;
    let got = cpu["amount"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 0.02 * want,
        "cpu cost {got}, want {want}: {cpu}"
    );
    assert_eq!(cpu["unit"], "cpu-core-hours");
    assert!(
        (cpu["share_percent"].as_f64().unwrap() - 20.0).abs() < 0.5,
        "{cpu}"
    );
    let mem = &st["resources"]["memory"]["cost"];
    let want = 0.10 * 72.0 * gib;
    let got = mem["amount"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 0.02 * want,
        "memory cost {got}, want {want}: {mem}"
    );
    assert_eq!(mem["unit"], "gib-hours");
    let text = e.ok(&["status"]).stdout;
    assert!(
        text.contains("synthetic cost over the window so far: cpu ")
            && text.contains("CPU core-hours (20.0 % of it on average)"),
        "{text}"
    );
    // the metrics, from a pass that starts nothing (paused: no load in a parallel test)
    e.desired(r#"{"version":1,"paused":true,"window_days":3,"cpu":{"target_percent":50},"memory":{"target_percent":40},"disk":{"enabled":false}}"#);
    let dir = e.path().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    e.ok(&[
        "reconcile",
        "--once",
        "--textfile-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(e.workers().is_empty());
    let prom = std::fs::read_to_string(dir.join("cro.prom")).unwrap();
    assert!(
        prom.lines()
            .any(|l| l.starts_with(r#"cro_synthetic_cost{resource="cpu",unit="cpu-core-hours"} "#)),
        "{prom}"
    );
}

/// `memory.metric`: the total measured the way the provider's agent does. With `used`
/// (free's "used": no buffers or page cache) status reports that figure (the test computes
/// it from /proc/meminfo itself), says how it is measured, and the history records it; a
/// metric cro does not know is refused, naming the field.
#[test]
fn memory_is_measured_as_the_desired_metric_says() {
    let e = Env::new();
    e.desired(r#"{"version":1,"paused":true,"cpu":{"enabled":false},"disk":{"enabled":false},"memory":{"target_percent":5,"metric":"used"}}"#);
    let oracle = || {
        let t = std::fs::read_to_string("/proc/meminfo").unwrap();
        let f = |n: &str| -> f64 {
            t.lines()
                .find_map(|l| l.strip_prefix(n))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let total = f("MemTotal:");
        (total - f("MemFree:") - f("Buffers:") - f("Cached:") - f("SReclaimable:")) / total * 100.0
    };
    let before = oracle();
    let st = e.status();
    let after = oracle();
    let mem = &st["resources"]["memory"];
    assert_eq!(mem["metric"], "used", "{mem}");
    let got = mem["total_percent"].as_f64().unwrap();
    assert!(
        got >= before.min(after) - 0.5 && got <= before.max(after) + 0.5,
        "status {got} %, /proc/meminfo says {before:.2}-{after:.2} %"
    );
    let text = e.ok(&["status"]).stdout;
    assert!(
        text.contains("memory measured as MemTotal - MemFree - Buffers - Cached - SReclaimable (memory.metric used)"),
        "{text}"
    );
    e.ok(&["reconcile", "--once"]);
    let h = e.ok(&["history", "--json"]).json();
    assert_eq!(h[0]["memory_metric"], "used", "{h}");
    e.desired(r#"{"version":1,"memory":{"metric":"rss"}}"#);
    let r = e.run(&["validate"]);
    assert_eq!(r.code, 78, "{r:?}");
    assert!(r.stderr.contains("memory.metric"), "{r:?}");
}

/// Run cro with a deadline: a command that blocks (on a FIFO, say) fails the test instead
/// of hanging it.
fn run_within(e: &Env, args: &[&str], desired: Option<&std::path::Path>, secs: u64) -> Run {
    let mut c = e.cmd();
    if let Some(d) = desired {
        c.env("CRO_DESIRED", d);
    }
    let mut child = c
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cro {args:?} still running after {secs} s: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from_output(child.wait_with_output().unwrap())
}

/// Issue 24, 1: the desired path is trusted like the state directory. A FIFO, a symlink to
/// a file only root may read, a group-writable file and a file in a world-writable
/// directory are each refused at once (exit 78 naming the path and what is wrong) by
/// validate, plan and reconcile; status and the server say so without blocking; nothing of
/// the other file is printed or served; the workers keep their last good jobs.
#[test]
fn an_untrusted_desired_file_is_refused_at_once_and_nothing_of_it_is_shown() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let secret_dir = e.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = secret_dir.join("shadow");
    let marker = "root:TOPSECRET:20228";
    std::fs::write(&secret, format!("{marker}:0:99999:7:::\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_server, addr) = serve_idle(&e);
    let before = three_workers(&e);
    let good = std::fs::read_to_string(e.desired_path()).unwrap();
    let desired = e.desired_path();
    let reset = || {
        let _ = std::fs::remove_file(&desired);
    };
    // a valid document with a marker, so a file that were read would show it
    let valid_with_marker = r#"{"version":1,"paused":true,"cpu":{"TOPSECRET":1}}"#;
    let ww = e.path().join("world-writable");
    std::fs::create_dir(&ww).unwrap();
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let in_ww = ww.join("desired.json");
    std::fs::write(&in_ww, valid_with_marker).unwrap();
    type Case<'a> = (
        &'a str,
        Box<dyn Fn() + 'a>,
        Option<&'a std::path::Path>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "fifo",
            Box::new(|| {
                reset();
                let o = std::process::Command::new("mkfifo")
                    .arg(&desired)
                    .output()
                    .unwrap();
                assert!(o.status.success());
            }),
            None,
            "is a FIFO",
        ),
        (
            "symlink to a root-only file",
            Box::new(|| {
                reset();
                std::os::unix::fs::symlink(&secret, &desired).unwrap();
            }),
            None,
            "is a symbolic link",
        ),
        (
            "group-writable file",
            Box::new(|| {
                reset();
                std::fs::write(&desired, valid_with_marker).unwrap();
                std::fs::set_permissions(&desired, std::fs::Permissions::from_mode(0o664)).unwrap();
            }),
            None,
            "is writable by its group",
        ),
        (
            "file in a world-writable directory",
            Box::new(|| {}),
            Some(&in_ww),
            "which is writable by everyone",
        ),
    ];
    for (name, make, named, why) in &cases {
        make();
        let path = named.map_or(desired.clone(), |p| p.to_path_buf());
        for args in [&["validate"][..], &["plan"], &["reconcile", "--once"]] {
            let t0 = Instant::now();
            let r = run_within(&e, args, *named, 10);
            assert_eq!(r.code, 78, "{name}: cro {args:?}: {r:?}");
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{name}: {args:?} took {:?}",
                t0.elapsed()
            );
            assert!(
                r.stderr.contains(&path.display().to_string()) && r.stderr.contains(why),
                "{name}: cro {args:?} must name the path and say `{why}`: {r:?}"
            );
            assert!(
                !r.stderr.contains("TOPSECRET") && !r.stdout.contains("TOPSECRET"),
                "{name}: {r:?}"
            );
        }
        let r = run_within(&e, &["status", "--json"], *named, 10);
        assert!(
            r.stdout.contains(why),
            "{name}: status --json must say why: {r:?}"
        );
        assert!(!r.stdout.contains("TOPSECRET"), "{name}: {r:?}");
        if named.is_none() {
            for page in ["/api/status", "/", "/metrics"] {
                let (code, _, body) = http(
                    &addr,
                    &format!("GET {page} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                );
                assert_eq!(code, 200, "{name}: {page}");
                assert!(
                    !body.contains("TOPSECRET"),
                    "{name}: {page} served the other file: {body}"
                );
            }
        }
        // the workers kept their last good jobs
        assert_eq!(e.workers(), before, "{name}: the workers changed");
    }
    reset();
    std::fs::write(&desired, good).unwrap();
    e.ok(&["validate"]);
    // a draft named on the command line is the caller's own business: validate reads it
    // wherever it is (here: its unknown field is reported), but never a FIFO
    let r = e.run(&["validate", in_ww.to_str().unwrap()]);
    assert!(r.code == 78 && r.stderr.contains("unknown field"), "{r:?}");
    let fifo = e.path().join("draft-fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let r = run_within(&e, &["validate", fifo.to_str().unwrap()], None, 10);
    assert!(r.code == 78 && r.stderr.contains("is a FIFO"), "{r:?}");
}

/// Issue 24, 3: `--allow-host NAME` lets a name through the Host check (the name a
/// Prometheus elsewhere scrapes this host by); IP literals of the bound address, mapped
/// loopback among them, are answered; other names still get 421.
#[test]
fn serve_answers_allowed_names_and_its_own_literals_only() {
    let e = Env::new();
    e.desired(&idle_desired(&e.plain_mount()));
    e.ok(&["reconcile", "--once"]);
    let (_server, addr) = serve_on_a_free_port(&e, &["--allow-host", "cro-web1.example.net"]);
    let port = addr.rsplit(':').next().unwrap().to_string();
    let code = |host: &str| {
        http(
            &addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .0
    };
    for ok in [
        format!("cro-web1.example.net:{port}"),
        "CRO-WEB1.example.NET.".to_string(),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        assert_eq!(code(&ok), 200, "Host {ok}");
    }
    for bad in ["evil.example", "cro-web1.example.net.evil", "192.0.2.1"] {
        assert_eq!(code(bad), 421, "Host {bad}");
    }
}

/// `reconcile --service` is Windows' (the service control manager starts cro so): on
/// Linux it is a usage error that names systemd's way, and it starts nothing.
#[test]
fn the_windows_service_mode_is_refused_on_linux_naming_systemd() {
    let e = Env::new();
    let r = e.run(&["reconcile", "--service"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("systemd"), "{r:?}");
    assert!(
        !e.path().join("state/history").exists(),
        "no pass was made: {r:?}"
    );
    let r = e.run(&["reconcile", "--service", "--once"]);
    assert_eq!(r.code, 2, "--service and --once: {r:?}");
}

/// A first window two days from its close with about 60 % still needed on average: a
/// day's outage would make it unrecoverable even at the limit. `explain` (text and JSON)
/// and `status` say "at risk" first, with the margin; a window nearly met does not.
#[test]
fn a_first_window_with_a_thin_outage_margin_is_at_risk_in_status_and_explain() {
    // a 7-day first window for 40 %, its first 5 days recorded at `cpu` %
    let five_days_at = |cpu: u32| {
        let e = Env::new();
        e.desired(r#"{"version":1,"window_days":7,"cpu":{"target_percent":40},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
        e.write_history(
            5 * 288,
            300.0,
            &format!(r#""cpu":{{"total":{cpu},"synthetic":0,"level":0,"target":40}}"#),
        );
        e
    };
    // at 32 %: the last 2 days need (40.x · 7 − 32 · 5) / 2 ≈ 60 %
    let e = five_days_at(32);
    let j = e.ok(&["explain", "--json"]).json();
    let cpu = &j["resources"]["cpu"];
    assert_eq!(cpu["at_risk"], true, "{j}");
    let m = cpu["outage_margin_hours"].as_f64().unwrap();
    assert!(m > 0.0 && m < 24.0, "{j}");
    let reason = cpu["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("at risk: a host outage of more than"),
        "{reason}"
    );
    // status shows the forecast once a pass has started the worker (before, its column
    // says that no pass has run); the burner runs for the moment this takes
    e.ok(&["reconcile", "--once"]);
    let text = e.ok(&["status"]).stdout;
    assert!(
        text.contains("at risk: a host outage of more than"),
        "{text}"
    );
    e.ok(&["recover"]);
    let text = e.ok(&["explain"]).stdout;
    assert!(text.contains("cpu:") && text.contains("at risk"), "{text}");
    // the same 5 days at 41 %: the window is all but met, no warning
    let e = five_days_at(41);
    let j = e.ok(&["explain", "--json"]).json();
    assert_eq!(j["resources"]["cpu"]["at_risk"], false, "{j}");
    assert!(!e.ok(&["status"]).stdout.contains("at risk"));
}
