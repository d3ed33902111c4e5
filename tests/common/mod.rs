//! Test harness: run the real `cro` binary in a temporary state directory. Dropping an
//! `Env` runs `cro recover` on it and unmounts what it mounted, also when a test fails.
#![allow(dead_code)]
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CRO: &str = env!("CARGO_BIN_EXE_cro");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub mounts: Vec<PathBuf>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A desired state that starts every worker but loads nothing: CPU and memory at level 0,
/// disk padding a plain directory at 0 %. Safe to run in parallel with other tests.
pub fn idle_desired(disk_mount: &Path) -> String {
    format!(
        r#"{{"version":1,"cpu":{{"target_percent":0}},"memory":{{"target_percent":0}},"disk":{{"target_percent":0,"min_free_gib":0,"allow_plain_directory":true,"mounts":["{}"]}}}}"#,
        disk_mount.display()
    )
}

/// A desired state built field by field: a field set where its parent object does not
/// exist (a typo, a template that changed) fails the test instead of silently leaving the
/// document as it was.
#[derive(Clone, Debug)]
pub struct Desired(pub serde_json::Value);

impl Desired {
    /// The idle state (targets 0) with one disk mount: workers that hold nothing.
    pub fn idle(disk_mount: &Path) -> Desired {
        Desired::parse(&idle_desired(disk_mount))
    }
    pub fn parse(text: &str) -> Desired {
        Desired(serde_json::from_str(text).expect("a JSON document"))
    }
    /// Set the field at a JSON pointer such as `/cpu/max_synthetic_percent`.
    pub fn set(mut self, pointer: &str, v: impl Into<serde_json::Value>) -> Desired {
        let (parent, key) = pointer
            .rsplit_once('/')
            .expect("a pointer like /cpu/enabled");
        let shown = self.0.to_string();
        let obj = self
            .0
            .pointer_mut(parent)
            .and_then(|p| p.as_object_mut())
            .unwrap_or_else(|| panic!("no object at {parent:?} in {shown}"));
        obj.insert(key.to_string(), v.into());
        self
    }
    /// Replace the object at `pointer` (e.g. `/cpu` with `{"enabled": false}`).
    pub fn replace(mut self, pointer: &str, v: serde_json::Value) -> Desired {
        let shown = self.0.to_string();
        let slot = self
            .0
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("nothing at {pointer:?} in {shown}"));
        *slot = v;
        self
    }
    pub fn text(&self) -> String {
        self.0.to_string()
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cro-test-")
                .tempdir()
                .unwrap(),
            mounts: vec![],
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn desired_path(&self) -> PathBuf {
        self.state().join("desired.json")
    }
    /// Write the desired file (by rename, like config management does).
    pub fn desired(&self, json: &str) -> &Env {
        std::fs::create_dir_all(self.state()).unwrap();
        let tmp = self.state().join(".desired.tmp");
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(&tmp, self.desired_path()).unwrap();
        self
    }
    /// A directory to pad (a plain directory on the test's filesystem).
    pub fn plain_mount(&self) -> PathBuf {
        let d = self.path().join("data");
        std::fs::create_dir_all(&d).unwrap();
        d
    }
    /// A real small filesystem (needs root; CI runs as root).
    pub fn tmpfs(&mut self, mib: u64) -> PathBuf {
        let d = self.path().join("tmpfs");
        self.tmpfs_at(&d, mib);
        d
    }
    /// Mount a tmpfs of `mib` MiB at `dir` (created if needed), unmounted on drop.
    pub fn tmpfs_at(&mut self, dir: &Path, mib: u64) {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "this test needs root to mount a tmpfs (CI runs as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.mounts.push(dir.to_path_buf());
    }
    /// The idle desired state on a plain directory, one pass, and its three workers.
    pub fn start_idle(&self) -> (PathBuf, Vec<(String, i32)>) {
        let m = self.plain_mount();
        self.desired(&idle_desired(&m));
        self.ok(&["reconcile", "--once"]);
        let ws = three_workers(self);
        (m, ws)
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CRO);
        c.arg("--state-dir")
            .arg(self.state())
            .env_remove("CRO_DESIRED")
            .env_remove("CRO_STATE_DIR")
            // Each test is its own host: the one-cro-per-host claim lives in this dir.
            .env("CRO_RUN_DIR", self.path().join("run"))
            .env("RUST_LOG", "warn");
        c
    }
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.cmd().args(args).stdin(Stdio::null()).output().unwrap())
    }
    /// Run cro as on CentOS 7's kernel (3.10) under tests/tools/oldkernel.py --no-psi:
    /// newer system calls answer ENOSYS, /proc/pressure is hidden; the workers it starts
    /// inherit both. Needs root and python3-seccomp (.ci/run installs it).
    pub fn run_old_kernel(&self, args: &[&str]) -> Run {
        let c = self.cmd();
        let mut o = Command::new("/usr/bin/python3");
        o.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/oldkernel.py"
        ))
        .arg("--no-psi")
        .arg(c.get_program())
        .args(c.get_args())
        .args(args)
        .stdin(Stdio::null());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => o.env(k, v),
                None => o.env_remove(k),
            };
        }
        Run::from_output(o.output().unwrap())
    }
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "cro {args:?} failed: {r:?}");
        r
    }
    pub fn status(&self) -> serde_json::Value {
        self.ok(&["status", "--json"]).json()
    }
    /// Live worker PIDs by job id (from /proc: `cro worker --job <our jobs dir>/<id>.json`).
    pub fn workers(&self) -> Vec<(String, i32)> {
        workers_of(&self.state())
    }
    pub fn job_status(&self, id: &str) -> Option<serde_json::Value> {
        std::fs::read(self.state().join("jobs").join(format!("{id}.status.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }
    /// Write `count` history records `step_s` apart, ending now, each with the given
    /// samples (`"cpu":{...}` and so on), into day files as reconcile would.
    pub fn write_history(&self, count: usize, step_s: f64, samples: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let hist = self.state().join("history");
        std::fs::create_dir_all(&hist).unwrap();
        let mut files: std::collections::BTreeMap<String, String> = Default::default();
        for i in (0..count).rev() {
            let ts = now - i as f64 * step_s;
            let (stamp, day) = utc_stamp(ts);
            let line = format!("{{\"ts\":\"{stamp}\",\"interval_s\":{step_s:.1},{samples}}}\n");
            files.entry(day).or_default().push_str(&line);
        }
        for (day, text) in files {
            std::fs::write(hist.join(format!("{day}.jsonl")), text).unwrap();
        }
    }
    pub fn job_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.state().join("jobs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A daemon started by a test. Killed on drop, which runs before the `Env`'s recover when
/// the guard is declared after the `Env`: a daemon left running would start the workers
/// again right after recover removed them.
pub struct Daemon(pub std::process::Child);

impl Env {
    /// `cro reconcile` (the daemon) with these extra arguments, stderr captured; the guard
    /// stops it (declare it after the Env, so it stops before the Env's recover runs).
    pub fn daemon(&self, args: &[&str]) -> Daemon {
        Daemon(
            self.cmd()
                .arg("reconcile")
                .args(args)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }
    /// History records written so far (lines in every day file).
    pub fn history_lines(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(self.state().join("history")) else {
            return 0;
        };
        rd.flatten()
            .map(|f| {
                std::fs::read_to_string(f.path())
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum()
    }
}

impl Daemon {
    /// SIGTERM, wait (bounded) and return what it logged.
    pub fn stop(mut self) -> String {
        send_signal(self.0.id() as i32, rustix::process::Signal::TERM);
        let out = wait_for(Duration::from_secs(10), "the daemon to exit", || {
            self.0.try_wait().unwrap()
        });
        let mut err = String::new();
        if let Some(s) = self.0.stderr.as_mut() {
            std::io::Read::read_to_string(s, &mut err).unwrap();
        }
        assert!(out.success(), "daemon exit {out:?}: {err}");
        err
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Reconcile the idle desired state and serve it on a free loopback port; the guard
/// stops the server.
pub fn serve_idle(e: &Env) -> (Daemon, String) {
    e.desired(&idle_desired(&e.plain_mount()));
    serve_idle_as_is(e)
}

/// Reconcile the desired state as it is, then serve it (see `serve_idle`).
pub fn serve_idle_as_is(e: &Env) -> (Daemon, String) {
    e.ok(&["reconcile", "--once"]);
    serve_on_a_free_port(e, &[])
}

/// `cro serve` on a free loopback port with `extra` arguments; waits until it listens.
pub fn serve_on_a_free_port(e: &Env, extra: &[&str]) -> (Daemon, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = Daemon(
        e.cmd()
            .args(["serve", "--listen", &addr])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(10), "the server to listen", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    (server, addr)
}

pub fn http(addr: &str, raw: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    // no more to send: a half request then ends at once instead of waiting for a timeout
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// Wait until the idle desired state's three workers (cpu, disk, memory) run.
pub fn three_workers(e: &Env) -> Vec<(String, i32)> {
    wait_for(Duration::from_secs(10), "three workers", || {
        Some(e.workers()).filter(|w| w.len() == 3)
    })
}

/// SplitMix64: random but reproducible from a printed seed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `CRO_TEST_SEED`, else the clock; the seed is printed for a replay.
    pub fn from_env() -> Rng {
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
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

pub fn workers_of(state: &Path) -> Vec<(String, i32)> {
    let jobs = std::fs::canonicalize(state.join("jobs")).unwrap_or(state.join("jobs"));
    let prefix = format!("{}/", jobs.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into())
            .collect();
        if args.get(1).map(String::as_str) != Some("worker") {
            continue;
        }
        // zombies have no cmdline; a live worker names its job file
        if let Some(job) = args.iter().find_map(|a| a.strip_prefix(&prefix)) {
            out.push((job.trim_end_matches(".json").to_string(), pid));
        }
    }
    out.sort();
    out
}

/// Poll until `f` returns Some, or panic after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(timeout, f, || what.to_string())
}

/// `wait_for`, with a failure message built when it fails (to show the state then).
pub fn wait_for_or<T>(
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    what: impl Fn() -> String,
) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // a zombie counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
}

impl Drop for Env {
    /// Teardown is part of the test: a `recover` that fails, or a worker that outlives
    /// it, fails the test (unless it is failing already: then the first failure is the
    /// one to read). Whatever happens, nothing of ours outlives it.
    fn drop(&mut self) {
        let mut problems = vec![];
        if self.state().exists() {
            let r = self.run(&["recover"]);
            if r.code != 0 {
                problems.push(format!("cro recover failed at teardown: {r:?}"));
            }
            for (id, pid) in self.workers() {
                problems.push(format!("worker {id} (pid {pid}) outlived recover"));
                send_signal(pid, rustix::process::Signal::KILL);
            }
        }
        for m in self.mounts.drain(..).rev() {
            let ok = Command::new("umount")
                .arg(&m)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                problems.push(format!("cannot unmount {}", m.display()));
            }
        }
        if !problems.is_empty() {
            if std::thread::panicking() {
                eprintln!("teardown: {}", problems.join("; "));
            } else {
                panic!("teardown: {}", problems.join("; "));
            }
        }
    }
}

/// A real latency-sensitive service for the measuring tests: nginx (Debian's nginx-light,
/// which .ci/run installs) serving a 2 KiB page on a free loopback port, one worker
/// process, stopped by PID on drop.
pub struct Nginx {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start() -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("cro-nginx-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(dir.path().join("index.html"), "x".repeat(2048)).unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}; }} }}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs nginx (Debian's nginx-light; .ci/run installs it)");
        let n = Nginx {
            child,
            port,
            _dir: dir,
        };
        wait_for(Duration::from_secs(5), "nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        n
    }

    /// wrk against it: (p50 ms, p99 ms, requests/s).
    pub fn wrk(&self, conns: u32, secs: u32) -> (f64, f64, f64) {
        let o = Command::new("wrk")
            .args([
                "-t1",
                &format!("-c{conns}"),
                &format!("-d{secs}s"),
                "--latency",
            ])
            .arg(format!("http://127.0.0.1:{}/", self.port))
            .output()
            .expect("this test needs wrk (Debian's wrk; .ci/run installs it)");
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        let ms = |label: &str| -> f64 {
            let v = t
                .lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label} in wrk output:\n{t}"))
                .trim();
            let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap());
            let n: f64 = n.parse().unwrap();
            n * match unit {
                "us" => 1e-3,
                "ms" => 1.0,
                "s" => 1e3,
                u => panic!("unit {u} in {v}"),
            }
        };
        let rps = t
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{t}"))
            .trim()
            .parse()
            .unwrap();
        (ms("50%"), ms("99%"), rps)
    }
}

impl Nginx {
    /// The processes serving: the master and its worker(s).
    fn pids(&self) -> Vec<i32> {
        let master = self.child.id() as i32;
        let mut pids = vec![master];
        pids.extend(
            all_pids()
                .into_iter()
                .filter(|p| proc_stat(*p).is_some_and(|s| s.ppid == master)),
        );
        pids
    }

    /// Nanoseconds nginx's processes have spent runnable but waiting for a CPU
    /// (/proc/PID/schedstat, second field): the time the guest's scheduler made the service
    /// wait, whatever the hypervisor did.
    pub fn run_delay_ns(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
            .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers and waits for them (a SIGKILLed master
    /// leaves its worker behind, serving).
    fn drop(&mut self) {
        let workers = self.pids();
        stop_child(&mut self.child, rustix::process::Signal::TERM);
        for w in &workers[1..] {
            send_signal(*w, rustix::process::Signal::KILL);
        }
    }
}

/// stress-ng holding every CPU at `percent` (`--cpu-load`), the peer the benchmarks set
/// beside cro; stopped by PID on drop (SIGINT: stress-ng then stops its own stressors),
/// and bounded by `--timeout` should the test die first.
pub struct StressNg {
    child: std::process::Child,
}

impl StressNg {
    pub fn cpu_load(percent: u32, timeout_s: u32) -> StressNg {
        let cpus = std::thread::available_parallelism().unwrap().get();
        let child = Command::new("stress-ng")
            .process_group(0) // CommandExt: its stressors share its group
            .args([
                "--cpu",
                &cpus.to_string(),
                "--cpu-load",
                &percent.to_string(),
            ])
            .args(["--timeout", &format!("{timeout_s}s"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs stress-ng (Debian's stress-ng; tests/run.sh installs it)");
        StressNg { child }
    }

    /// Its process id, which is also its process group's (it and its stressors).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for StressNg {
    fn drop(&mut self) {
        send_signal(-self.pid(), rustix::process::Signal::CONT);
        stop_child(&mut self.child, rustix::process::Signal::INT);
    }
}

/// Ask a child of ours to stop with `sig`, give it 5 s, then SIGKILL it; reaped either way.
fn stop_child(child: &mut std::process::Child, sig: rustix::process::Signal) {
    send_signal(child.id(), sig);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// What a test reads of /proc/PID/stat.
pub struct ProcStat {
    pub comm: String,
    pub ppid: i32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// /proc/PID/stat, parsed after the command name (which may hold spaces and parentheses);
/// None when the process is gone.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (l, r) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat.get(r + 2..)?.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        comm: stat[l + 1..r].to_string(),
        ppid: num(1)? as i32,
        cpu_ticks: num(11)? + num(12)?,
    })
}

/// Every process id in /proc now.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// Every other process that used more than `min_percent` of a CPU over `window`, busiest
/// first, as "pid comm pct%": a measuring test prints them, so a figure taken next to
/// something nobody meant to run says so.
pub fn busy_processes(window: Duration, min_percent: f64) -> Vec<String> {
    let ticks = || -> std::collections::HashMap<i32, (String, u64)> {
        all_pids()
            .into_iter()
            .filter_map(|pid| proc_stat(pid).map(|s| (pid, (s.comm, s.cpu_ticks))))
            .collect::<std::collections::HashMap<i32, (String, u64)>>()
    };
    let before = ticks();
    std::thread::sleep(window);
    let after = ticks();
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let me = std::process::id() as i32;
    let mut busy: Vec<(f64, String)> = after
        .iter()
        .filter(|(pid, _)| **pid != me)
        .filter_map(|(pid, (comm, t))| {
            let used = t - before.get(pid).map_or(0, |b| b.1.min(*t));
            let pct = used as f64 / hz / window.as_secs_f64() * 100.0;
            (pct > min_percent).then(|| (pct, format!("{pid} {comm} {pct:.0}%")))
        })
        .collect();
    busy.sort_by(|a, b| b.0.total_cmp(&a.0));
    busy.into_iter().map(|b| b.1).collect()
}

/// Ticks (USER_HZ) every CPU of this guest lost to the hypervisor so far (/proc/stat's
/// `steal`): a CPU the host gave to another guest while this one had work.
pub fn steal_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().find(|l| l.starts_with("cpu ")).unwrap();
    cpu.split_whitespace().nth(8).unwrap().parse().unwrap()
}

/// The median of some figures.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Give the command (and every process it starts) at most `bytes` of address space.
pub fn limit_address_space(cmd: &mut Command, bytes: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Oracles: what the kernel says, read by the test itself, never through cro's own
/// parsers (a bug shared by cro and its test would otherwise be invisible).
pub mod oracle {
    use std::path::Path;

    /// (used, available) bytes of the filesystem at `p`, as df computes them.
    pub fn statvfs(p: &Path) -> (u64, u64) {
        let s = rustix::fs::statvfs(p).unwrap_or_else(|e| panic!("statvfs {}: {e}", p.display()));
        let f = s.f_frsize as u64;
        (
            (s.f_blocks as u64 - s.f_bfree as u64) * f,
            s.f_bavail as u64 * f,
        )
    }

    /// df's use%: used / (used + available), in percent.
    pub fn used_percent(p: &Path) -> f64 {
        let (used, avail) = statvfs(p);
        used as f64 / (used + avail) as f64 * 100.0
    }

    /// Bytes the regular files in `<mount>/.cro-ballast` occupy on disk (st_blocks).
    pub fn ballast_on_disk(mount: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(mount.join(".cro-ballast")) else {
            return 0;
        };
        rd.flatten()
            .filter_map(|e| std::fs::symlink_metadata(e.path()).ok())
            .filter(|m| m.file_type().is_file())
            .map(|m| m.blocks() * 512)
            .sum()
    }

    /// (busy, total) jiffies of all CPUs from /proc/stat's first line (busy: all but
    /// idle and iowait).
    pub fn cpu_times() -> (u64, u64) {
        let text = std::fs::read_to_string("/proc/stat").unwrap();
        let v: Vec<u64> = text
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse().unwrap())
            .collect();
        let total: u64 = v.iter().sum();
        (total - v[3] - v[4], total)
    }

    /// (MemTotal, MemAvailable) in bytes from /proc/meminfo.
    pub fn meminfo() -> (u64, u64) {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("/proc/meminfo has no {name}"))
                * 1024
        };
        (field("MemTotal:"), field("MemAvailable:"))
    }
}

/// examples/grafana-dashboard.json, parsed.
pub fn grafana_dashboard() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana-dashboard.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Raise this test process's soft limit on open files (tests that hold a thousand
/// connections; the default soft limit is often 1,024).
pub fn raise_fd_limit(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let target = now.maximum.map_or(want, |m| want.min(m));
    if now.current.is_some_and(|c| c >= target) {
        return;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: now.maximum,
        },
    )
    .unwrap();
}

/// Send `sig` to `pid` (a process this test started), through rustix: no unsafe code.
/// A process already gone is not an error here. A negative `pid` names a process group, as
/// kill(2) has it.
pub fn send_signal(pid: impl TryInto<i32>, sig: rustix::process::Signal) {
    let Ok(pid) = pid.try_into() else { return };
    let group = pid < 0;
    let Some(pid) = rustix::process::Pid::from_raw(pid.abs()) else {
        return;
    };
    let _ = if group {
        rustix::process::kill_process_group(pid, sig)
    } else {
        rustix::process::kill_process(pid, sig)
    };
}

/// RFC 3339 (whole seconds, `Z`) and the UTC day of a Unix time, written with the `time`
/// crate, not cro's own timefmt: fixtures are an oracle independent of the code they test.
pub fn utc_stamp(ts: f64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(ts.floor() as i64).unwrap();
    let stamp = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let day = format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
    (stamp, day)
}
