//! Tests that measure the machine: CPU totals, a real workload's speed, memory and disk
//! levels. They must not share the CPUs with other tests: run this binary alone and
//! serially and in release (`cargo test --release --test measure -- --test-threads=1`),
//! after the build.
//! Tolerances are wide enough for a noisy 2-CPU VM.
mod common;
use common::*;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

use common::oracle::{cpu_times, meminfo, statvfs};

/// Busy percent of the whole host over `d`.
fn host_cpu_over(d: Duration) -> f64 {
    let a = cpu_times();
    std::thread::sleep(d);
    let b = cpu_times();
    (b.0 - a.0) as f64 / (b.1 - a.1) as f64 * 100.0
}

/// Ticks the hypervisor gave our vCPUs to someone else (the `steal` column of /proc/stat).
fn steal_ticks() -> u64 {
    let l = std::fs::read_to_string("/proc/stat").unwrap();
    l.lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(8)
        .unwrap()
        .parse()
        .unwrap()
}

/// The kernel's count of OOM kills since boot (/proc/vmstat oom_kill).
fn oom_kills() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .expect("/proc/vmstat has oom_kill")
        .trim()
        .parse()
        .unwrap()
}

fn rss(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A single-thread busy loop counting iterations: the "real workload".
struct Spinner {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            let mut x = 1u64;
            while !s.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        Spinner {
            stop,
            count,
            handle: Some(handle),
        }
    }
    /// Iterations per second over `d`.
    fn rate_over(&self, d: Duration) -> f64 {
        let a = self.count.load(Ordering::Relaxed);
        let t = Instant::now();
        std::thread::sleep(d);
        (self.count.load(Ordering::Relaxed) - a) as f64 / t.elapsed().as_secs_f64()
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Samples a figure in a thread every few milliseconds, keeping the lowest (or highest)
/// seen until `finish`: the extreme of a race, not one reading afterwards.
struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(every: Duration, lowest: bool, f: impl Fn() -> u64 + Send + 'static) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(if lowest { u64::MAX } else { 0 }));
        let handle = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let v = f();
                    if lowest {
                        seen.fetch_min(v, Ordering::Relaxed);
                    } else {
                        seen.fetch_max(v, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Sampler {
            stop,
            seen,
            handle: Some(handle),
        }
    }
    /// Lowest free bytes on the filesystem at `m`, every 5 ms.
    fn lowest_free(m: &std::path::Path) -> Sampler {
        let m = m.to_path_buf();
        Sampler::start(Duration::from_millis(5), true, move || statvfs(&m).1)
    }
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn cpu_holds_40_percent_on_an_idle_host() {
    let e = Env::new();
    e.desired(r#"{"version":1,"cpu":{"target_percent":40},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
    e.ok(&["reconcile", "--once"]);
    std::thread::sleep(Duration::from_secs(5));
    let total = host_cpu_over(Duration::from_secs(5));
    eprintln!("cpu level 40 on an idle host: total {total:.1} % over 5 s");
    assert!(
        (total - 40.0).abs() <= 5.0,
        "total {total:.1} % is not 40 ± 5"
    );
}

#[test]
fn cpu_fills_only_the_gap_next_to_a_busy_loop_and_yields_to_it() {
    // A/B in alternating rounds (cro at level 70, then at level 0), judged by the median
    // of the per-round speed ratios: the speed of a shared VM drifts by up to ±10 % over
    // tens of seconds (measured here), which a single before/after comparison mistakes
    // for our overhead.
    let e = Env::new();
    let spin = Spinner::start();
    let desired = |t: u32| {
        format!(
            r#"{{"version":1,"cpu":{{"target_percent":{t}}},"memory":{{"enabled":false}},"disk":{{"enabled":false}}}}"#
        )
    };
    let (mut ratios, mut totals) = (vec![], vec![]);
    let mut steal = vec![];
    for _ in 0..12 {
        e.desired(&desired(0));
        e.ok(&["reconcile", "--once"]);
        // measure "off" only once the worker itself reports that it adds nothing
        wait_for(Duration::from_secs(10), "the cpu worker to go idle", || {
            e.job_status("cpu").filter(|s| {
                s["level_percent"].as_f64().unwrap_or(1.0) < 1.0
                    && s["synthetic_percent"].as_f64().unwrap_or(1.0) < 1.0
            })
        });
        let s0 = steal_ticks();
        let off = spin.rate_over(Duration::from_secs(2));
        e.desired(&desired(70));
        e.ok(&["reconcile", "--once"]);
        std::thread::sleep(Duration::from_secs(3));
        let a = cpu_times();
        let s1 = steal_ticks();
        let on = spin.rate_over(Duration::from_secs(2));
        let b = cpu_times();
        steal.push((s1 - s0, steal_ticks() - s1));
        totals.push((b.0 - a.0) as f64 / (b.1 - a.1) as f64 * 100.0);
        ratios.push(on / off);
    }
    eprintln!("host steal ticks (off, on) per round: {steal:?}");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (total, ratio) = (median(&mut totals.clone()), median(&mut ratios.clone()));
    eprintln!(
        "busy loop + level 70: total {total:.1} % (rounds {totals:.1?}), loop speed {ratio:.3} x without cro (rounds {ratios:.3?})"
    );
    assert!(
        (total - 70.0).abs() <= 5.0,
        "total {total:.1} % is not 70 ± 5 (fill the gap, not add on top)"
    );
    assert!(
        ratio >= 0.95,
        "the real loop kept only {ratio:.3} of its speed without cro"
    );
}

/// Desire memory only: level 300 MiB above what is used now, floor 700 MiB below what is
/// available now. Returns the floor (percent).
fn memory_300_mib_above_now(e: &Env) -> f64 {
    let (total, avail) = meminfo();
    let used = total - avail;
    let level = (used + 300 * MIB) as f64 / total as f64 * 100.0;
    let floor = (avail - 700 * MIB) as f64 / total as f64 * 100.0;
    e.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"disk":{{"enabled":false}},"memory":{{"target_percent":{level:.4},"min_available_percent":{floor:.4}}}}}"#));
    floor
}

#[test]
fn memory_ballast_is_reached_released_and_yields_to_a_real_allocator() {
    let e = Env::new();
    let (total, _) = meminfo();
    let floor = memory_300_mib_above_now(&e);
    e.ok(&["reconcile", "--once"]);
    let pid = wait_for(Duration::from_secs(5), "the memory worker", || {
        e.workers().first().map(|w| w.1)
    });
    let t = Instant::now();
    wait_for(Duration::from_secs(30), "about 300 MiB of ballast", || {
        (rss(pid) >= 250 * MIB).then_some(())
    });
    eprintln!(
        "memory: 250 MiB of ballast reached in {:.2} s, rss {} MiB",
        t.elapsed().as_secs_f64(),
        rss(pid) / MIB
    );

    // A real process (this test) allocates 400 MiB: available would sink to the floor.
    let ooms_before = oom_kills();
    let t = Instant::now();
    let mut hog = vec![0u8; (400 * MIB) as usize];
    for i in (0..hog.len()).step_by(4096) {
        hog[i] = 1;
    }
    // release builds drop writes to memory nobody reads: keep the allocation real
    std::hint::black_box(&mut hog);
    let given_back = wait_for_or(
        Duration::from_secs(5),
        || (rss(pid) <= 150 * MIB).then(|| t.elapsed()),
        || {
            format!(
                "the ballast to shrink (rss {} MiB); job: {:?}; status: {:?}",
                rss(pid) / MIB,
                std::fs::read_to_string(e.state().join("jobs/memory.json")),
                e.job_status("memory")
            )
        },
    );
    let (_, avail_after) = meminfo();
    let floor_bytes = (floor / 100.0 * total as f64) as u64;
    eprintln!(
        "memory: ballast down to {} MiB {:.2} s after a 400 MiB allocation; available {} MiB, floor {} MiB",
        rss(pid) / MIB,
        given_back.as_secs_f64(),
        avail_after / MIB,
        floor_bytes / MIB
    );
    assert!(
        given_back <= Duration::from_secs(2),
        "ballast took {given_back:?} to yield (goal: 2 s)"
    );
    assert!(
        avail_after + 32 * MIB >= floor_bytes,
        "available {} MiB is below the floor {} MiB",
        avail_after / MIB,
        floor_bytes / MIB
    );
    assert!(pid_alive(pid), "the worker must shrink, not die");
    assert_eq!(
        oom_kills(),
        ooms_before,
        "the kernel OOM-killed something while the ballast raced a real allocation"
    );
    drop(hog);

    // Released on pause.
    e.desired(r#"{"version":1,"paused":true}"#);
    e.ok(&["reconcile", "--once"]);
    assert!(!pid_alive(pid));
    assert!(e.workers().is_empty());
}

#[test]
fn disk_reaches_its_level_on_tmpfs_and_a_real_writer_never_meets_enospc() {
    let mut e = Env::new();
    let m = e.tmpfs(256);
    let desired = |level: u32| {
        format!(
            r#"{{"version":1,"cpu":{{"enabled":false}},"memory":{{"enabled":false}},"disk":{{"mounts":["{}"],"target_percent":{level},"min_free_percent":10,"min_free_gib":0}}}}"#,
            m.display()
        )
    };
    e.desired(&desired(50));
    e.ok(&["reconcile", "--once"]);
    let pct = || {
        let (u, a) = statvfs(&m);
        u as f64 / (u + a) as f64 * 100.0
    };
    wait_for(Duration::from_secs(10), "disk at 50 %", || {
        ((pct() - 50.0).abs() <= 3.0).then_some(())
    });
    eprintln!("disk: 50 % reached ({:.1} %)", pct());

    // Now a level close to the floor, and a real writer adding 10 MiB every half second.
    e.desired(&desired(80));
    e.ok(&["reconcile", "--once"]);
    wait_for(Duration::from_secs(10), "disk at 80 %", || {
        ((pct() - 80.0).abs() <= 3.0).then_some(())
    });
    let (u, a) = statvfs(&m);
    let floor = (u + a) / 10;
    let watcher = Sampler::lowest_free(&m);
    let mut errors = vec![];
    let block = vec![0x5au8; (10 * MIB) as usize];
    for i in 0..15 {
        if let Err(err) = std::fs::write(m.join(format!("real-{i}.dat")), &block) {
            errors.push(format!("write {i}: {err}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let min_free = watcher.finish();
    eprintln!(
        "disk: writer added 150 MiB at 20 MiB/s next to a level of 80 %; lowest free {} MiB (floor {} MiB)",
        min_free / MIB,
        floor / MIB
    );
    assert!(errors.is_empty(), "the real writer failed: {errors:?}");
    assert!(
        min_free >= floor,
        "free space fell to {} MiB, below the floor {} MiB",
        min_free / MIB,
        floor / MIB
    );
}

#[test]
fn memory_worker_killed_while_growing_is_replaced_once_and_nothing_is_left() {
    let e = Env::new();
    memory_300_mib_above_now(&e);
    let mut killed_at = vec![];
    for round in 0..3 {
        e.ok(&["reconcile", "--once"]);
        let pid = wait_for(Duration::from_secs(5), "the memory worker", || {
            e.workers().first().map(|w| w.1)
        });
        // Kill it while it grows: some ballast, not all of it.
        wait_for(
            Duration::from_secs(10),
            "the ballast to start growing",
            || (rss(pid) >= 40 * MIB).then_some(()),
        );
        let at = rss(pid) / MIB;
        send_signal(pid, rustix::process::Signal::KILL);
        wait_for(Duration::from_secs(5), "the killed worker to go", || {
            (!pid_alive(pid)).then_some(())
        });
        killed_at.push(at);
        eprintln!("memory round {round}: killed at {at} MiB of ballast");
    }
    // The next pass starts exactly one worker, which reaches the level on its own.
    e.ok(&["reconcile", "--once"]);
    let ws = e.workers();
    assert_eq!(ws.len(), 1, "{ws:?}");
    let pid = ws[0].1;
    wait_for(
        Duration::from_secs(30),
        "about 300 MiB of ballast again",
        || (rss(pid) >= 250 * MIB).then_some(()),
    );
    assert!(
        killed_at.iter().all(|m| *m < 250),
        "not killed mid-growth: {killed_at:?}"
    );
    e.ok(&["recover"]);
    assert!(e.workers().is_empty());
    assert!(!pid_alive(pid));
}

/// Invariant 8: CPU burned by any cro process is synthetic. A memory worker filling
/// 300 MiB of ballast burns CPU (page faults, writing noise); the next record must count
/// that as synthetic, not as organic load the CPU policy could credit itself with. The
/// oracle is the worker's own CPU clock, read by the test from /proc/PID/stat.
#[test]
fn cpu_burned_by_the_memory_worker_is_recorded_as_synthetic() {
    let e = Env::new();
    memory_300_mib_above_now(&e);
    let doc = std::fs::read_to_string(e.desired_path()).unwrap();
    let with_cpu = Desired::parse(&doc)
        .replace("/cpu", serde_json::json!({"target_percent": 0}))
        .text();
    e.desired(&with_cpu);
    e.ok(&["reconcile", "--once"]);
    wait_for(
        Duration::from_secs(20),
        "the memory ballast to fill",
        || {
            e.job_status("memory")
                .filter(|s| s["ballast_bytes"].as_u64().unwrap_or(0) >= 280 * MIB)
        },
    );
    let pid = e.job_status("memory").unwrap()["pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let worker_s = (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz;
    e.ok(&["reconcile", "--once"]);
    let h = e.ok(&["history", "--json"]).json();
    let last = h.as_array().unwrap().last().unwrap().clone();
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let recorded_s = last["cpu"]["synthetic"].as_f64().unwrap() / 100.0
        * last["interval_s"].as_f64().unwrap()
        * cpus;
    println!(
        "memory worker used {worker_s:.2} CPU s filling; recorded synthetic {recorded_s:.2} CPU s"
    );
    assert!(
        worker_s >= 0.05,
        "the fill should cost measurable CPU: {worker_s}"
    );
    assert!(
        recorded_s >= 0.9 * worker_s - 0.03,
        "the worker's {worker_s:.2} CPU s must be synthetic, the record says {recorded_s:.2}: {last}"
    );
    e.ok(&["recover"]);
}

/// Issue "never at the neighbour's expense", 1: a latency-sensitive service keeps its
/// tail next to cro's burners. nginx measured by wrk (1 connection, 2 s) alone, next to cro
/// holding CPU at 70 %, and next to stress-ng `--cpu-load 70` (the peer): both are started
/// once and switched on and off by SIGCONT/SIGSTOP, the three conditions in rotating order,
/// twelve rounds, medians. Short interleaved segments share whatever else the machine is
/// doing: on a guest whose host is busy, steal (/proc/stat) moves every p99, alone
/// included (a CI run measured 5 ms alone, rising round by round), and no placement inside
/// the guest changes that, so the tail is judged against the peer in the same seconds.
///
/// Two guards. What cro controls is the guest's scheduler: the time nginx spends runnable
/// but waiting for a CPU (/proc/PID/schedstat) per request stays near alone and far below
/// the peer's (measured here: ~0.03 us alone, 0.4-1.4 us next to cro, 7-9 us next to
/// stress-ng). And the p99 next to cro is no worse than next to the peer (with
/// `CRO_CPU_PLACEMENT=autogroup` it is: 2.7 ms against 1.4 ms). The goal against alone
/// (p99 within 1.2x) is measured on a quiet machine by bench/neighbours.sh;
/// docs/BENCHMARKS.md has those figures.
#[test]
fn a_latency_sensitive_service_keeps_its_tail_next_to_the_burners() {
    use rustix::process::Signal;
    let nginx = Nginx::start();
    nginx.wrk(1, 1); // warm up
    let others = busy_processes(Duration::from_secs(1), 2.0);
    let e = Env::new();
    e.desired(r#"{"version":1,"cpu":{"target_percent":70},"memory":{"enabled":false},"disk":{"enabled":false}}"#);
    const SECS: u32 = 2;
    const ROUNDS: usize = 12;
    e.ok(&["reconcile", "--once"]);
    let cro: Vec<i32> = e.workers().iter().map(|w| w.1).collect();
    assert_eq!(cro.len(), 1, "one cpu worker: {cro:?}");
    let stress = StressNg::cpu_load(70, ROUNDS as u32 * 3 * (SECS + 2) + 60);
    std::thread::sleep(Duration::from_secs(2));
    // Each condition's processes; SIGCONT on every way out, so teardown finds none stopped.
    let groups = [vec![], cro.clone(), vec![-(stress.pid())]];
    let _resume = OnDrop(|| {
        for p in groups.iter().flatten() {
            send_signal(*p, Signal::CONT);
        }
    });
    let switch = |on: usize| {
        for (i, g) in groups.iter().enumerate() {
            for p in g {
                send_signal(*p, if i == on { Signal::CONT } else { Signal::STOP });
            }
        }
    };
    // p99 ms, run-queue wait per request (us), steal (% of the CPUs' time)
    let mut seen: [Vec<(f64, f64, f64)>; 3] = Default::default();
    let names = ["alone", "cro at 70", "stress-ng at 70"];
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let cpu_s = |pid: i32| proc_stat(pid).expect("cro's worker runs").cpu_ticks as f64 / hz;
    let (mut burned, mut burning) = (0.0, 0.0);
    for round in 0..ROUNDS {
        for k in 0..3 {
            let which = (round + k) % 3;
            switch(which);
            std::thread::sleep(Duration::from_millis(500));
            let (d0, s0, t0, b0) = (
                nginx.run_delay_ns(),
                steal_ticks(),
                Instant::now(),
                cpu_s(cro[0]),
            );
            let (_, p99, rps) = nginx.wrk(1, SECS);
            let (d1, s1, t1, b1) = (
                nginx.run_delay_ns(),
                steal_ticks(),
                Instant::now(),
                cpu_s(cro[0]),
            );
            if which == 1 {
                burned += b1 - b0;
                burning += (t1 - t0).as_secs_f64() * cpus;
            }
            let requests = (rps * SECS as f64).max(1.0);
            let wait_us = (d1 - d0) as f64 / 1e3 / requests;
            let steal = (s1 - s0) as f64 / hz / ((t1 - t0).as_secs_f64() * cpus) * 100.0;
            seen[which].push((p99, wait_us, steal));
        }
    }
    switch(1);
    drop(stress);
    let synthetic = burned / burning * 100.0;
    let med = |i: usize, f: fn(&(f64, f64, f64)) -> f64| median(seen[i].iter().map(f).collect());
    let mut table = String::new();
    for (i, name) in names.iter().enumerate() {
        table += &format!(
            "  {name:<16} p99 {:>7.3} ms  wait/request {:>6.2} us  steal {:>5.1} %  rounds (p99 ms): {:?}\n",
            med(i, |r| r.0),
            med(i, |r| r.1),
            med(i, |r| r.2),
            seen[i]
                .iter()
                .map(|r| (r.0 * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "nginx, 1 connection, medians of {ROUNDS} rounds of {SECS} s:\n{table}cro's worker used {synthetic:.1} % of the CPUs in its segments (the gap to 70 % \
         that nginx and wrk left)\nbusy before the test (over 2 % of a CPU): {others:?}"
    );
    table += &format!("busy before the test: {others:?}\n");
    assert!(
        synthetic >= 5.0,
        "cro's worker burned only {synthetic:.1} % of the CPUs while it ran: nothing was \
         measured next to it\n{table}"
    );
    let (a, c, s) = (med(0, |r| r.1), med(1, |r| r.1), med(2, |r| r.1));
    assert!(
        s >= a + 2.0,
        "stress-ng at 70 made nginx wait only {s:.2} us per request (alone {a:.2}): the \
         peer was not running, so this run proves nothing\n{table}"
    );
    assert!(
        c <= (0.5 * s).max(a + 3.0),
        "next to cro nginx waited {c:.2} us per request for a CPU (alone {a:.2}, next to \
         stress-ng {s:.2}): the burners are not yielding at once\n{table}"
    );
    let (a, c, s) = (med(0, |r| r.0), med(1, |r| r.0), med(2, |r| r.0));
    assert!(
        c <= (1.25 * s).max(a + 1.0),
        "p99 {c:.3} ms next to cro, {a:.3} ms alone, {s:.3} ms next to stress-ng: cro's \
         burners cost the service more of its tail than the peer's\n{table}"
    );
}

/// Runs its closure when dropped, also while a test panics.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Issue "never at the neighbour's expense", 3: a writer at page-cache speed (dd, 700 MiB)
/// next to ballast holding a 2 GiB ext4 at 85 % (min free 10 %) never meets ENOSPC; the
/// lowest free space is sampled every 5 ms by the test. A static ballast of the same size
/// fails every time (docs/BENCHMARKS.md: 20 runs each).
#[test]
fn a_fast_writer_never_meets_enospc_next_to_disk_ballast() {
    let e = Env::new();
    let img = e.path().join("disk.img");
    let m = e.path().join("disk");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::File::create(&img)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
    run(Command::new("mount")
        .arg("-o")
        .arg("loop")
        .arg(&img)
        .arg(&m));
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(m.clone());
    e.desired(&format!(
        r#"{{"version":1,"cpu":{{"enabled":false}},"memory":{{"enabled":false}},"disk":{{"mounts":["{}"],"target_percent":85,"min_free_percent":10,"min_free_gib":0}}}}"#,
        m.display()
    ));
    let pct = || {
        let (u, a) = statvfs(&m);
        u as f64 / (u + a) as f64 * 100.0
    };
    let mut failures = vec![];
    let mut lowest = f64::MAX;
    for i in 0..5 {
        e.ok(&["reconcile", "--once"]);
        wait_for(Duration::from_secs(30), "the disk at 84 %", || {
            (pct() >= 84.0).then_some(())
        });
        let sampler = Sampler::lowest_free(&m);
        let o = Command::new("dd")
            .args(["if=/dev/zero", "bs=1M", "count=700", "status=none"])
            .arg(format!("of={}", m.join("organic").display()))
            .output()
            .unwrap();
        let low_bytes = sampler.finish();
        let (u, a) = statvfs(&m);
        let low = low_bytes as f64 / (u + a) as f64 * 100.0;
        lowest = lowest.min(low);
        eprintln!(
            "fast writer run {i}: {}, lowest free {low:.1} %",
            if o.status.success() { "ok" } else { "FAILED" }
        );
        if !o.status.success() {
            failures.push(format!("run {i}: {}", String::from_utf8_lossy(&o.stderr)));
        }
        std::fs::remove_file(m.join("organic")).unwrap();
        e.ok(&["recover"]);
    }
    assert!(
        failures.is_empty(),
        "the writer met ENOSPC next to the ballast: {failures:?}"
    );
    assert!(lowest > 0.0, "free space touched 0 %");
}

/// Issue "never at the neighbour's expense", 2: under an address-space limit the memory
/// worker's mapping fails; it must back off (not spin, not flood its log) and hold what it
/// has. Before: 99.5 % of a CPU and ~8,000 log lines a second.
#[test]
fn the_memory_worker_backs_off_when_it_cannot_map() {
    let e = Env::new();
    wants_a_gib_more_memory(&e);
    // 512 MiB of address space for the reconcile, inherited by the worker it starts
    let mut cmd = e.cmd();
    cmd.args(["reconcile", "--once"]);
    limit_address_space(&mut cmd, 512 << 20);
    assert!(cmd.status().unwrap().success());
    let st = wait_for(
        Duration::from_secs(20),
        "the worker to hit its limit",
        || {
            e.job_status("memory")
                .filter(|s| s["limited_by"].as_str().is_some_and(|l| l.contains("map")))
        },
    );
    let pid = st["pid"].as_i64().unwrap() as i32;
    let cpu_s = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap())
            / rustix::param::clock_ticks_per_second() as f64
    };
    let log = e.state().join("logs/memory.log");
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();
    let (c0, l0) = (cpu_s(pid), lines());
    std::thread::sleep(Duration::from_secs(6));
    let (c1, l1) = (cpu_s(pid), lines());
    let held = e.job_status("memory").unwrap()["ballast_bytes"]
        .as_u64()
        .unwrap();
    eprintln!(
        "memory worker at its address-space limit: {:.2} % of a CPU, {} log lines in 6 s, holding {} MiB",
        (c1 - c0) / 6.0 * 100.0,
        l1 - l0,
        held / MIB
    );
    assert!(
        c1 - c0 < 0.3,
        "the worker used {:.2} CPU s in 6 s: it spins",
        c1 - c0
    );
    assert!(l1 - l0 <= 3, "{} log lines in 6 s", l1 - l0);
    assert!(
        held >= 64 * MIB,
        "it should hold what it could map ({held})"
    );
    assert!(pid_alive(pid));
    e.ok(&["recover"]);
}

/// A memory target 1 GiB above what is used now, with a 1 % floor.
fn wants_a_gib_more_memory(e: &Env) {
    let (total, avail) = meminfo();
    let level = (total - avail + 1024 * MIB) as f64 / total as f64 * 100.0;
    e.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"disk":{{"enabled":false}},"memory":{{"target_percent":{level:.4},"min_available_percent":1}}}}"#));
}

/// Puts vm.overcommit_memory and its limit back, however the test ends.
struct Overcommit {
    mode: String,
    ratio: String,
    kbytes: String,
}

impl Overcommit {
    fn strict(headroom: u64) -> Overcommit {
        let r = |f: &str| {
            std::fs::read_to_string(format!("/proc/sys/vm/{f}"))
                .unwrap()
                .trim()
                .to_string()
        };
        let g = Overcommit {
            mode: r("overcommit_memory"),
            ratio: r("overcommit_ratio"),
            kbytes: r("overcommit_kbytes"),
        };
        let committed = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Committed_AS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap();
        std::fs::write(
            "/proc/sys/vm/overcommit_kbytes",
            (committed + headroom / 1024).to_string(),
        )
        .expect("this test needs root to set vm.overcommit_kbytes (CI runs as root)");
        std::fs::write("/proc/sys/vm/overcommit_memory", "2").unwrap();
        g
    }
}

impl Drop for Overcommit {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/vm/overcommit_memory", &self.mode);
        // writing the ratio clears kbytes, and the other way round
        if self.kbytes != "0" {
            let _ = std::fs::write("/proc/sys/vm/overcommit_kbytes", &self.kbytes);
        } else {
            let _ = std::fs::write("/proc/sys/vm/overcommit_ratio", &self.ratio);
        }
    }
}

/// Issue "never at the neighbour's expense", 2: under vm.overcommit_memory = 2 the ballast
/// is charged against CommitLimit whatever MAP_NORESERVE says; MemAvailable looks fine
/// while real malloc and fork fail. The worker keeps the commit headroom above the floor,
/// and a real 200 MiB allocation succeeds next to a ballast that wants 1 GiB.
#[test]
fn strict_overcommit_leaves_commit_for_real_allocations() {
    let e = Env::new();
    let (total, _) = meminfo();
    wants_a_gib_more_memory(&e);
    let floor = total / 100;
    let guard = Overcommit::strict(900 * MIB);
    e.ok(&["reconcile", "--once"]);
    let st = wait_for(
        Duration::from_secs(20),
        "the ballast to stop at the commit limit",
        || {
            e.job_status("memory").filter(|s| {
                s["limited_by"]
                    .as_str()
                    .is_some_and(|l| l.contains("commit"))
            })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let commit = || {
        let m = std::fs::read_to_string("/proc/meminfo").unwrap();
        let f = |k: &str| -> u64 {
            m.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap()
                * 1024
        };
        f("CommitLimit:") as i64 - f("Committed_AS:") as i64
    };
    let headroom = commit();
    // a real allocation: 200 MiB mapped and written (refused at once under strict
    // overcommit when the commit limit has no room), then unmapped
    let ok = match memmap2::MmapMut::map_anon((200 * MIB) as usize) {
        Ok(mut m) => {
            m.fill(1);
            true
        }
        Err(_) => false,
    };
    e.ok(&["recover"]);
    drop(guard);
    eprintln!(
        "strict overcommit: ballast {} MiB ({}), commit headroom {} MiB (floor {} MiB), a real 200 MiB allocation {}",
        st["ballast_bytes"].as_u64().unwrap() / MIB,
        st["limited_by"],
        headroom / MIB as i64,
        floor / MIB,
        if ok { "succeeded" } else { "FAILED" }
    );
    assert!(
        ok,
        "a real allocation failed next to the ballast under strict overcommit"
    );
    assert!(
        headroom >= floor as i64,
        "commit headroom {headroom} below the floor {floor}"
    );
}

/// Invariant 4 for memory with a real organic load present: organic inside the gap
/// (150 MiB of a 300 MiB gap) leaves the total at the level, not level + organic; the
/// minimum available memory is sampled during the race, not once afterwards.
#[test]
fn memory_total_stays_at_the_level_when_organic_load_fills_part_of_the_gap() {
    let e = Env::new();
    let (total, _) = meminfo();
    memory_300_mib_above_now(&e);
    let level: f64 = std::fs::read_to_string(e.desired_path())
        .unwrap()
        .split("\"target_percent\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    e.ok(&["reconcile", "--once"]);
    let used_pct = || {
        let (t, a) = meminfo();
        (t - a) as f64 / t as f64 * 100.0
    };
    // Settled means within the band for a run of samples, not one lucky reading: on
    // kernels >= 6.7 pages freed by an earlier test (or by the worker itself) sit on
    // per-CPU lists, not counted in MemAvailable, until drained (measured here: 420 MiB
    // draining at 6-16 MiB/s), so the total drifts while the worker follows it.
    // See docs/MEASUREMENT.md.
    let steady = |band: f64, timeout: Duration, what: &str| {
        let started = Instant::now();
        let mut run = 0;
        wait_for(timeout, what, || {
            run = if (used_pct() - level).abs() < band {
                run + 1
            } else {
                0
            };
            std::thread::sleep(Duration::from_millis(100));
            (run >= 15).then(|| started.elapsed())
        })
    };
    steady(0.2, Duration::from_secs(60), "the level, steady for 1.5 s");
    // the oracle is MemTotal - MemAvailable, read by the test itself
    let (_, avail) = meminfo();
    let before = total - avail;
    let sampler = Sampler::start(Duration::from_millis(20), false, || {
        let (t, a) = meminfo();
        t - a
    });
    let mut organic = vec![0u8; (150 * MIB) as usize];
    for i in (0..organic.len()).step_by(4096) {
        organic[i] = 1;
    }
    std::hint::black_box(&mut organic);
    // the worker polls every 200 ms; a deadline, not a fixed sleep, for it to settle
    let settle = steady(
        0.5,
        Duration::from_secs(40),
        "the level with organic load, steady for 1.5 s",
    );
    let settled = used_pct();
    let peak = sampler.finish();
    drop(organic);
    e.ok(&["recover"]);
    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let rise = mib(peak.saturating_sub(before));
    eprintln!(
        "memory: level {level:.2} % ({:.0} MiB used); with 150 MiB organic inside the gap: steady at the level again {:.2} s later, settled at {settled:.2} %, peak {rise:.0} MiB above the total before",
        mib(before),
        settle.as_secs_f64()
    );
    assert!(
        (settled - level).abs() < 0.5,
        "total {settled:.2} % is not the level {level:.2} %"
    );
    // the total may rise by the organic load while the worker notices, never by much
    // more: a worker that grew (or failed to shrink) while the organic load arrived
    assert!(
        rise < 150.0 + 60.0,
        "total rose {rise:.0} MiB for 150 MiB of organic load: the worker added memory meanwhile"
    );
}
