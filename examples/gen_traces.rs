//! Generates the organic-usage traces in examples/traces/ (30 days, one row every 5 min).
//! Deterministic (fixed-seed generator), so the files and the benchmark table built on
//! them are reproducible:
//!
//!   cargo run --example gen_traces            # rewrites examples/traces/*.csv
use std::fmt::Write;

const DT: u64 = 300;
const DAYS: u64 = 30;

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal noise with standard deviation `sd`.
    fn noise(&mut self, sd: f64) -> f64 {
        (self.next() + self.next() + self.next() - 1.5) * 2.0 * sd
    }
}

fn clamp(x: f64) -> f64 {
    (x.clamp(0.0, 100.0) * 100.0).round() / 100.0
}

/// hour of day (0..24) and day index for time t
fn clock(t: u64) -> (f64, u64) {
    ((t % 86_400) as f64 / 3600.0, t / 86_400)
}

fn write(name: &str, seed: u64, f: impl Fn(u64, &mut Rng) -> Option<(f64, f64, f64)>) {
    let mut rng = Rng(seed);
    let mut out = String::from("t,cpu,memory,disk\n");
    for i in 1..=DAYS * 86_400 / DT {
        let t = i * DT;
        if let Some((c, m, d)) = f(t, &mut rng) {
            writeln!(out, "{t},{},{},{}", clamp(c), clamp(m), clamp(d)).unwrap();
        }
    }
    let path = format!("{}/examples/traces/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, out).unwrap();
    println!("wrote {path}");
}

fn diurnal(h: f64) -> f64 {
    // 0 at 04:00, 1 at 16:00
    0.5 - 0.5 * ((h - 4.0) / 24.0 * std::f64::consts::TAU).cos()
}

fn main() {
    // An idle VM: a few percent of CPU, steady memory and disk.
    write("idle-vm", 1, |t, r| {
        let (_, day) = clock(t);
        Some((
            2.0 + r.noise(0.7),
            12.0 + r.noise(0.3),
            8.0 + day as f64 * 0.02,
        ))
    });
    // A web server with a day/night cycle, busier on weekdays.
    write("diurnal-web", 2, |t, r| {
        let (h, day) = clock(t);
        let weekday = if day % 7 < 5 { 1.0 } else { 0.6 };
        let c = 4.0 + 42.0 * diurnal(h) * weekday + r.noise(3.0);
        let m = 28.0 + 14.0 * diurnal(h) * weekday + r.noise(1.0);
        Some((c, m, 30.0 + day as f64 * 0.1))
    });
    // A nightly batch: quiet all day, two busy hours from 02:00.
    write("nightly-batch", 3, |t, r| {
        let (h, _) = clock(t);
        let batch = (2.0..4.0).contains(&h);
        let c = if batch {
            85.0 + r.noise(5.0)
        } else {
            3.0 + r.noise(1.0)
        };
        let m = if batch {
            55.0 + r.noise(2.0)
        } else {
            18.0 + r.noise(0.5)
        };
        // scratch data grows during the batch and is cleaned at 06:00
        let d = 35.0
            + if (2.0..6.0).contains(&h) {
                (h - 2.0).min(2.0) * 5.0
            } else {
                0.0
            };
        Some((c, m, d))
    });
    // Weekly spikes: a report job every Monday for six hours.
    write("weekly-spikes", 4, |t, r| {
        let (h, day) = clock(t);
        let spike = day % 7 == 0 && (8.0..14.0).contains(&h);
        let c = if spike {
            80.0 + r.noise(5.0)
        } else {
            5.0 + r.noise(1.5)
        };
        let m = if spike {
            45.0 + r.noise(2.0)
        } else {
            22.0 + r.noise(0.5)
        };
        Some((c, m, 20.0 + r.noise(0.1)))
    });
    // The diurnal server with a week of downtime (days 10 to 17: no rows).
    write("downtime-week", 5, |t, r| {
        let (h, day) = clock(t);
        if (10..17).contains(&day) {
            return None;
        }
        let c = 4.0 + 30.0 * diurnal(h) + r.noise(3.0);
        let m = 25.0 + 10.0 * diurnal(h) + r.noise(1.0);
        Some((c, m, 25.0))
    });
    // A steadily rising load (a service taking on users): CPU 5 % to 60 % over the 30
    // days, memory 15 % to 45 %.
    write("rising", 6, |t, r| {
        let x = t as f64 / (DAYS * 86_400) as f64;
        let (h, _) = clock(t);
        let c = 5.0 + 55.0 * x + 4.0 * (diurnal(h) - 0.5) + r.noise(2.0);
        let m = 15.0 + 30.0 * x + r.noise(0.5);
        Some((c, m, 20.0 + 10.0 * x))
    });
    // A step up (a migration lands on day 15): CPU 10 % for 15 days, then 55 %.
    write("step-up", 7, |t, r| {
        let (h, day) = clock(t);
        let after = day >= 15;
        let c = if after { 55.0 } else { 10.0 } + 4.0 * (diurnal(h) - 0.5) + r.noise(2.0);
        let m = if after { 45.0 } else { 15.0 } + r.noise(0.5);
        Some((c, m, if after { 40.0 } else { 20.0 }))
    });
}
