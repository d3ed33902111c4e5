//! Figures for docs/BENCHMARKS.md, measured on this machine in one run, side by side with
//! stress-ng (`bench/run.sh` installs it). Not a pass/fail test: it prints numbers.
//!
//!   cargo bench --bench figures            (needs root: mounts a small loop filesystem)
//!
//! Everything is small and bounded: CPU runs of seconds, 1 GiB of memory ballast, a
//! 512 MiB loop filesystem; every worker is stopped with `cro recover` at the end.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CRO: &str = env!("CARGO_BIN_EXE_cro");
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Send `sig` to `pid` (a process this bench started), through rustix.
fn send_signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn cpu_times() -> (u64, u64) {
    let t = cro::observe::read_cpu_times().unwrap();
    (t.busy, t.total)
}

/// (MemTotal, MemAvailable) in bytes.
fn meminfo() -> (u64, u64) {
    cro::observe::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap()
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(") ").next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime are fields 14 and 15 (1-based); rest starts at field 3
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

struct Cro {
    dir: PathBuf,
}

impl Cro {
    fn new(name: &str) -> Cro {
        let dir = std::env::temp_dir().join(format!("cro-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Cro { dir }
    }
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(CRO);
        c.arg("--state-dir")
            .arg(self.state())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        c
    }
    fn desired(&self, json: &str) {
        let tmp = self.state().join(".d.tmp");
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(tmp, self.state().join("desired.json")).unwrap();
    }
    fn reconcile(&self) {
        let s = self.cmd().args(["reconcile", "--once"]).status().unwrap();
        assert!(s.success());
    }
    fn worker_pid(&self, id: &str) -> Option<u32> {
        let b = std::fs::read(self.state().join(format!("jobs/{id}.status.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    }
    fn recover(&self) {
        let _ = self.cmd().arg("recover").stderr(Stdio::null()).status();
    }
}

impl Drop for Cro {
    fn drop(&mut self) {
        self.recover();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `threads` busy loops in this process: the real workload. Rate = iterations/s.
struct Spinners {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    hs: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start(threads: usize) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let hs = (0..threads)
            .map(|_| {
                let (s, c) = (stop.clone(), count.clone());
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !s.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Spinners { stop, count, hs }
    }
    fn rate(&self, d: Duration) -> f64 {
        let a = self.count.load(Ordering::Relaxed);
        let t = Instant::now();
        std::thread::sleep(d);
        (self.count.load(Ordering::Relaxed) - a) as f64 / t.elapsed().as_secs_f64()
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.hs.drain(..) {
            let _ = h.join();
        }
    }
}

/// Host CPU % and workload rate over the same `d`.
fn measure(sp: Option<&Spinners>, d: Duration) -> (f64, f64) {
    let a = cpu_times();
    let rate = match sp {
        Some(s) => s.rate(d),
        None => {
            std::thread::sleep(d);
            0.0
        }
    };
    let b = cpu_times();
    ((b.0 - a.0) as f64 / (b.1 - a.1) as f64 * 100.0, rate)
}

fn stress_ng() -> Option<String> {
    let p = Command::new("sh")
        .args(["-c", "command -v stress-ng"])
        .output()
        .ok()?;
    p.status
        .success()
        .then(|| String::from_utf8_lossy(&p.stdout).trim().to_string())
}

fn kill(mut c: Child) {
    send_signal(c.id(), rustix::process::Signal::TERM);
    let _ = c.wait();
}

const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(8);

fn cpu_section(stress: &Option<String>) {
    println!("\n## CPU: tracking and the real workload's speed\n");
    println!(
        "Workload: busy-loop threads in the benchmark process (another session than the workers)."
    );
    println!(
        "`expected` is what a gap-filler should show: max(organic, level). Speed is the workload's rate"
    );
    println!("relative to running alone.\n");
    println!(
        "| level | workload threads | tool | total CPU % | expected % | error (points) | workload speed |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for threads in [0usize, 1, 2] {
        let sp = (threads > 0).then(|| Spinners::start(threads));
        // The solo speed is measured again right before every row: a VM's speed drifts
        // by a few percent over minutes, which would otherwise read as our overhead.
        let solo = || {
            sp.as_ref()
                .map(|s| s.rate(Duration::from_secs(3)))
                .unwrap_or(0.0)
        };
        let organic = threads as f64 * 50.0;
        for level in [20.0, 40.0, 70.0] {
            let expected = f64::max(organic, level);
            {
                let solo = solo();
                let c = Cro::new("cpu");
                c.desired(&format!(r#"{{"version":1,"cpu":{{"target_percent":{level}}},"memory":{{"enabled":false}},"disk":{{"enabled":false}}}}"#));
                c.reconcile();
                std::thread::sleep(SETTLE);
                let (total, rate) = measure(sp.as_ref(), WINDOW);
                let speed = if threads > 0 {
                    format!("{:.3}", rate / solo)
                } else {
                    "-".into()
                };
                println!(
                    "| {level} | {threads} | cro | {total:.1} | {expected:.0} | {:.1} | {speed} |",
                    (total - expected).abs()
                );
            }
            if let Some(s) = stress {
                let solo = solo();
                let child = Command::new(s)
                    .args([
                        "--cpu",
                        "0",
                        "--cpu-load",
                        &format!("{level}"),
                        "--timeout",
                        "60",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_secs(3));
                let (total, rate) = measure(sp.as_ref(), WINDOW);
                kill(child);
                let speed = if threads > 0 {
                    format!("{:.3}", rate / solo)
                } else {
                    "-".into()
                };
                println!(
                    "| {level} | {threads} | stress-ng --cpu-load {level} | {total:.1} | {expected:.0} | {:.1} | {speed} |",
                    (total - expected).abs()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn memory_section() {
    println!("\n## Memory: give-back\n");
    let c = Cro::new("mem");
    let (total, avail) = meminfo();
    let level = (total - avail + GIB) as f64 / total as f64 * 100.0;
    c.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"disk":{{"enabled":false}},"memory":{{"target_percent":{level:.4}}}}}"#));
    c.reconcile();
    let t = Instant::now();
    let pid = loop {
        if let Some(p) = c.worker_pid("memory")
            && proc_status_kib(p, "VmRSS:") * 1024 >= GIB - 64 * MIB
        {
            break p;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "ballast not reached");
        std::thread::sleep(Duration::from_millis(20));
    };
    let fill = t.elapsed().as_secs_f64();
    // (a) a real process allocates so much that MemAvailable would fall through the floor
    let (_, avail) = meminfo();
    let floor_pct = (avail - 1536 * MIB) as f64 / total as f64 * 100.0;
    c.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"disk":{{"enabled":false}},"memory":{{"target_percent":{level:.4},"min_available_percent":{floor_pct:.4}}}}}"#));
    c.reconcile();
    std::thread::sleep(Duration::from_secs(2));
    let before = proc_status_kib(pid, "VmRSS:") * 1024;
    let t = Instant::now();
    let mut hog = vec![0u8; (1536 * MIB) as usize];
    for i in (0..hog.len()).step_by(4096) {
        hog[i] = 1;
    }
    std::hint::black_box(&mut hog);
    let alloc_done = t.elapsed().as_secs_f64();
    let released = loop {
        let r = proc_status_kib(pid, "VmRSS:") * 1024;
        if r + GIB - 64 * MIB <= before {
            break t.elapsed().as_secs_f64();
        }
        if t.elapsed() > Duration::from_secs(10) {
            break f64::NAN;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(hog);
    println!("| measure | cro | stress-ng --vm |\n|---|---:|---|");
    println!("| fill 1 GiB of ballast (non-repeating data) | {fill:.2} s | - |");
    println!(
        "| a real 1.5 GiB allocation crosses the floor: 1 GiB of ballast given back after | {released:.2} s (the allocation itself took {alloc_done:.2} s) | never: holds until killed |"
    );
    // (b) the level is lowered: time from the job change to the memory being back
    c.desired(r#"{"version":1,"cpu":{"enabled":false},"disk":{"enabled":false},"memory":{"target_percent":0}}"#);
    std::thread::sleep(Duration::from_secs(3));
    c.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"disk":{{"enabled":false}},"memory":{{"target_percent":{level:.4}}}}}"#));
    c.reconcile();
    while proc_status_kib(pid, "VmRSS:") * 1024 < GIB - 64 * MIB {
        std::thread::sleep(Duration::from_millis(20));
    }
    c.desired(r#"{"version":1,"paused":true}"#);
    let t = Instant::now();
    c.reconcile();
    let (_, a1) = meminfo();
    println!(
        "| paused: worker stopped and 1 GiB returned (reconcile --once returns after) | {:.2} s | - |",
        t.elapsed().as_secs_f64()
    );
    let _ = a1;
    // the raw cost of munmap per GiB, for reference
    let t = Instant::now();
    let mut v = vec![1u8; GIB as usize];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 2;
    }
    std::hint::black_box(&mut v);
    let t2 = Instant::now();
    drop(std::hint::black_box(v));
    println!(
        "| for reference: munmap of 1 GiB in this process | {:.3} s (touching it: {:.2} s) | |",
        t2.elapsed().as_secs_f64(),
        (t2 - t).as_secs_f64()
    );
}

fn loop_fs(dir: &Path, mib: u64) -> Option<PathBuf> {
    let img = dir.join("fs.img");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).ok()?;
    let ok = Command::new("truncate")
        .arg("-s")
        .arg(format!("{mib}M"))
        .arg(&img)
        .status()
        .ok()?
        .success()
        && Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&img)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success()
        && Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .status()
            .ok()?
            .success();
    ok.then_some(mnt)
}

fn disk_section() {
    println!("\n## Disk: fill rate (512 MiB ext4 loop filesystem, level 80 %)\n");
    println!(
        "| fill | time to level | rate | peer: same bytes with | peer time |\n|---|---:|---:|---|---:|"
    );
    for fill in ["allocate", "write"] {
        let c = Cro::new(&format!("disk-{fill}"));
        let Some(m) = loop_fs(&c.dir, 512) else {
            println!("| {fill} | (no loop mount: needs root) | | | |");
            continue;
        };
        let used = || {
            let o = Command::new("df")
                .args(["-B1", "--output=used,avail"])
                .arg(&m)
                .output()
                .unwrap();
            let l = String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .unwrap()
                .to_string();
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0], v[0] + v[1])
        };
        let (u0, cap) = used();
        c.desired(&format!(r#"{{"version":1,"cpu":{{"enabled":false}},"memory":{{"enabled":false}},"disk":{{"mounts":["{}"],"target_percent":80,"min_free_gib":0,"fill":"{fill}"}}}}"#, m.display()));
        let t = Instant::now();
        c.reconcile();
        let target = (cap as f64 * 0.78) as u64;
        while used().0 < target && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let secs = t.elapsed().as_secs_f64();
        let bytes = used().0 - u0;
        c.recover();
        std::thread::sleep(Duration::from_millis(300));
        // the peer: fallocate(1) or dd of the same size
        let f = m.join("peer.bin");
        let t = Instant::now();
        let peer = if fill == "allocate" {
            Command::new("fallocate")
                .arg("-l")
                .arg(bytes.to_string())
                .arg(&f)
                .status()
                .unwrap();
            "fallocate -l"
        } else {
            Command::new("dd")
                .arg("if=/dev/urandom")
                .arg(format!("of={}", f.display()))
                .args([
                    "bs=4M",
                    &format!("count={}", bytes / (4 * MIB)),
                    "conv=fsync",
                    "status=none",
                ])
                .status()
                .unwrap();
            "dd if=/dev/urandom conv=fsync"
        };
        let peer_secs = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&f);
        println!(
            "| {fill} | {secs:.2} s for {} MiB | {:.0} MiB/s | {peer} | {peer_secs:.2} s |",
            bytes / MIB,
            bytes as f64 / MIB as f64 / secs
        );
        let _ = Command::new("umount").arg(&m).status();
    }
}

fn daemon_section() {
    println!("\n## The daemon's own footprint\n");
    let c = Cro::new("daemon");
    c.desired(r#"{"version":1,"interval_seconds":1,"cpu":{"target_percent":0},"memory":{"target_percent":0},"disk":{"enabled":false}}"#);
    let mut d = c
        .cmd()
        .arg("reconcile")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = proc_cpu_secs(d.id());
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let cpu = (proc_cpu_secs(d.id()) - cpu0) / t.elapsed().as_secs_f64() * 100.0;
    let rss = proc_status_kib(d.id(), "VmRSS:");
    let hwm = proc_status_kib(d.id(), "VmHWM:");
    let wpid = c.worker_pid("cpu");
    let wrss = wpid.map(|p| proc_status_kib(p, "VmRSS:")).unwrap_or(0);
    let w0 = wpid.map(proc_cpu_secs).unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs(5));
    let wcpu = wpid
        .map(|p| (proc_cpu_secs(p) - w0) / 5.0 * 100.0)
        .unwrap_or(0.0);
    send_signal(d.id(), rustix::process::Signal::TERM);
    let _ = d.wait();
    println!("| what | figure |\n|---|---:|");
    println!(
        "| daemon RSS (interval 1 s, 20 s) | {:.1} MiB (peak {:.1} MiB) |",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("| daemon CPU, ticking every second | {cpu:.2} % of one CPU |");
    println!(
        "| an idle CPU worker (level 0): RSS / CPU | {:.1} MiB / {wcpu:.2} % |",
        wrss as f64 / 1024.0
    );
}

/// 30 days of 1-second history (2.6 M records): how long `status` takes, cold (the window
/// cache is built from the files) and warm (only the tail is read).
fn window_section() {
    println!("\n## Window statistics over a large history\n");
    let c = Cro::new("window");
    let hist = c.state().join("history");
    std::fs::create_dir_all(&hist).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now - 30 * 86_400;
    let t = Instant::now();
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut day_file: Option<(String, std::io::BufWriter<std::fs::File>)> = None;
    for ts in start..now {
        let day = cro::timefmt::day(ts as f64);
        if day_file.as_ref().map(|d| &d.0) != Some(&day) {
            let f = std::fs::File::create(hist.join(format!("{day}.jsonl"))).unwrap();
            day_file = Some((day.clone(), std::io::BufWriter::new(f)));
        }
        let x = (ts % 86_400) as f64 / 86_400.0;
        let line = format!(
            "{{\"ts\":\"{}\",\"interval_s\":1.0,\"cpu\":{{\"total\":{:.2},\"synthetic\":{:.2},\"level\":25.0,\"target\":25.0}},\"memory\":{{\"total\":40.1,\"synthetic\":20.0,\"level\":40.0,\"target\":40.0}}}}\n",
            cro::timefmt::rfc3339(ts as f64),
            25.0 + 20.0 * (x * std::f64::consts::TAU).sin().max(0.0),
            20.0 - 10.0 * x
        );
        bytes += line.len() as u64;
        std::io::Write::write_all(&mut day_file.as_mut().unwrap().1, line.as_bytes()).unwrap();
        records += 1;
    }
    drop(day_file);
    let written = t.elapsed().as_secs_f64();
    c.desired(r#"{"version":1,"cpu":{"target_percent":25},"memory":{"target_percent":40},"disk":{"enabled":false}}"#);
    // CPU counters as a reconcile would have left them, so status needs no CPU sample of its own.
    std::fs::write(
        c.state().join("counters.json"),
        format!(r#"{{"at":{},"cpu":{{"busy":0,"total":0}}}}"#, now - 60),
    )
    .unwrap();
    let status = || {
        let t = Instant::now();
        let o = c
            .cmd()
            .args(["status", "--json"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            t.elapsed().as_secs_f64(),
            v["resources"]["cpu"]["window"]["value"]
                .as_f64()
                .unwrap_or(f64::NAN),
        )
    };
    let (cold, v1) = status();
    let (warm, v2) = status();
    let (warm2, _) = status();
    println!("| what | figure |\n|---|---:|");
    println!(
        "| history | {records} records, {:.0} MiB in 31 day files (written in {written:.1} s) |",
        bytes as f64 / MIB as f64
    );
    println!("| `cro status --json`, cold (window cache built from the files) | {cold:.2} s |");
    println!(
        "| `cro status --json`, warm (cache; only new lines read) | {warm:.2} s, {warm2:.2} s |"
    );
    println!("| cpu window mean reported (cold / warm) | {v1:.2} % / {v2:.2} % |");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let stress = stress_ng();
    println!("# cro figures\n");
    println!(
        "Host: {} CPUs, {:.1} GiB; kernel {}; stress-ng: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        meminfo().0 as f64 / GIB as f64,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        stress
            .as_deref()
            .unwrap_or("not installed (run bench/run.sh)")
    );
    let only = std::env::var("CRO_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "cpu" {
        cpu_section(&stress);
    }
    if only.is_empty() || only == "memory" {
        memory_section();
    }
    if only.is_empty() || only == "disk" {
        disk_section();
    }
    if only.is_empty() || only == "daemon" {
        daemon_section();
    }
    if only.is_empty() || only == "window" {
        window_section();
    }
}
