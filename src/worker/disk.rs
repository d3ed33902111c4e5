//! The disk worker: ballast files in `<mount>/.cro-ballast/`, grown by fallocate or by
//! writing incompressible data at idle I/O priority, trimmed *before* free space reaches
//! the floor. It polls five times a second (statvfs is cheap) and keeps extra headroom in
//! proportion to how fast organic data is growing, so a real writer never meets ENOSPC.
use super::{Ctx, End, Noise};
use crate::control::desired::Fill;
use crate::error::Result;
use crate::observe::{self, FsUsage};
use crate::state::jobs::JobSpec;
use crate::worker::ballast;
use std::time::{Duration, Instant};

const FILE_MAX: u64 = 1 << 30;
/// Most ballast added per poll when writing data (fallocate is instant and takes a whole
/// file's worth at once).
const WRITE_STEP_MAX: u64 = 64 << 20;
const POLL: Duration = Duration::from_millis(200);
const GROWTH_HEADROOM_S: f64 = 0.5;
/// The fastest writer we plan for: page-cache speed on this kind of VM (~1.5 GB/s
/// measured with dd). Free space is looked at often enough that such a writer cannot eat
/// half the margin above the floor between two looks.
const FAST_WRITER: f64 = 2.0e9;
const LOOK_MIN: Duration = Duration::from_millis(5);
/// What a release itself takes (truncate or unlink, then statfs sees it): a few ms.
const REACT: Duration = Duration::from_millis(10);
/// After a release, no regrowth for this long, then at most REGROW_STEP per poll for
/// GENTLE: a writer that paused may come back.
const HOLD: Duration = Duration::from_secs(10);
const GENTLE: Duration = Duration::from_secs(30);
const REGROW_STEP: u64 = 64 << 20;

/// Pure: when to look at free space again, given the margin above the floor (bytes).
pub fn next_look(margin: f64) -> Duration {
    Duration::from_secs_f64(
        (margin.max(0.0) / 2.0 / FAST_WRITER).clamp(LOOK_MIN.as_secs_f64(), POLL.as_secs_f64()),
    )
}

/// Pure: ballast to give back now so free space stays above the floor until the next
/// look, when organic data is eating `rate` bytes/s: twice what the writer could take
/// until then (and while we release), plus the headroom.
pub fn release_now(margin: f64, rate: f64, headroom: f64, next: Duration) -> u64 {
    let need = 2.0 * rate.max(0.0) * (next + REACT).as_secs_f64() + headroom;
    (need - margin).max(0.0) as u64
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskStep {
    pub target_bytes: u64,
    pub floor_bytes: u64,
    pub limited_by: Option<String>,
}

/// Pure: how much ballast to hold on a filesystem. `growth` is organic growth in bytes/s.
pub fn target(
    level: f64,
    min_free_percent: f64,
    min_free_bytes: u64,
    fs: &FsUsage,
    own: u64,
    growth: f64,
) -> DiskStep {
    let cap = fs.capacity_bytes() as f64;
    let organic = (fs.used_bytes as f64 - own as f64).max(0.0);
    let want = (level / 100.0 * cap - organic).max(0.0);
    let floor = (min_free_percent / 100.0 * cap).max(min_free_bytes as f64);
    // Headroom above the floor: 1 % of the filesystem, or half a second of organic
    // growth. (It was two seconds when a 200 ms poll was all that stood between a writer
    // and the floor; `watch` now gives back as fast as a writer takes, so a burst no
    // longer costs all the ballast.)
    let headroom = (0.01 * cap).max(GROWTH_HEADROOM_S * growth);
    let allowed = (own as f64 + fs.avail_bytes as f64 - floor - headroom).max(0.0);
    let limited_by = (allowed < want).then(|| {
        if growth * GROWTH_HEADROOM_S > 0.01 * cap {
            "organic data growing fast".to_string()
        } else {
            format!("free-space floor {:.0} MiB", floor / (1 << 20) as f64)
        }
    });
    DiskStep {
        target_bytes: want.min(allowed) as u64,
        floor_bytes: floor as u64,
        limited_by,
    }
}

fn ioprio_idle() {
    if let Err(e) = crate::sys::ioprio_idle() {
        tracing::warn!("cannot set idle I/O priority: {e}");
    }
}

struct Files {
    dir: crate::sys::fs::Dir,
    noise: Noise,
}

fn file_name(i: usize) -> String {
    format!("ballast-{i:06}.bin")
}

impl Files {
    fn own(&self) -> std::io::Result<(u64, Vec<(usize, u64)>)> {
        let mut files = vec![];
        for e in ballast::list(&self.dir)? {
            if let Some(i) = e
                .name
                .strip_prefix("ballast-")
                .and_then(|s| s.strip_suffix(".bin"))
                .and_then(|s| s.parse::<usize>().ok())
                && e.is_file
            {
                files.push((i, e.allocated));
            }
        }
        files.sort();
        Ok((files.iter().map(|f| f.1).sum(), files))
    }

    fn open(&self, i: usize) -> std::io::Result<std::fs::File> {
        let f = crate::sys::fs::create_at(&self.dir, &file_name(i), 0o600)?;
        // Only a regular file of ours with one link is written or truncated.
        ballast::check_ours(&f, 0o022).map_err(|why| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{}: {why}", file_name(i)),
            )
        })?;
        Ok(f)
    }

    /// Add up to `add` bytes (at most one file, or WRITE_STEP_MAX when writing, per call).
    fn grow(&mut self, files: &[(usize, u64)], add: u64, fill: Fill) -> std::io::Result<()> {
        let (i, size) = match files.last() {
            Some(&(i, s)) if s < FILE_MAX => (i, s),
            Some(&(i, _)) => (i + 1, 0),
            None => (0, 0),
        };
        // Where allocating means writing (Windows), in writing's steps too: the loop
        // must come back soon to give space to a writer.
        let step = if fill == Fill::Write || crate::sys::fs::ALLOCATE_WRITES {
            WRITE_STEP_MAX
        } else {
            FILE_MAX
        };
        let n = add.min(step).min(FILE_MAX - size);
        let f = self.open(i)?;
        // Grow from the end of what is allocated (st_blocks), rounded down to a page.
        let off = f.metadata()?.len().max(size) & !4095;
        match fill {
            Fill::Allocate => {
                crate::sys::fs::allocate(&f, off, n)?;
            }
            Fill::Write => {
                let mut buf = vec![0u8; 1 << 20];
                let mut done = 0;
                while done < n {
                    let len = (n - done).min(buf.len() as u64) as usize;
                    self.noise.fill(&mut buf[..len]);
                    crate::sys::fs::write_all_at(&f, &buf[..len], off + done)?;
                    done += len as u64;
                }
                f.sync_data()?;
            }
        }
        Ok(())
    }

    /// Trim down to `keep` bytes: truncate the last file, delete files that reach zero.
    fn shrink_to(&self, files: &[(usize, u64)], keep: u64) -> std::io::Result<()> {
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for &(i, size) in files.iter().rev() {
            if total <= keep {
                break;
            }
            let excess = total - keep;
            if excess >= size {
                ballast::unlink_at(&self.dir, &file_name(i))?;
                total -= size;
            } else {
                let f = self.open(i)?;
                f.set_len((size - excess) & !4095)?;
                total -= size - ((size - excess) & !4095);
            }
        }
        Ok(())
    }
}

/// Between two steps (POLL), watch free space closely and give ballast back as fast as a
/// writer takes space: the look interval shrinks with the margin above the floor (5 ms
/// when it is thin), and each look releases what the writer could take before the next
/// one. statfs costs about a microsecond, a truncate a few milliseconds. The bytes
/// released, if any. (Before this, a 200 ms poll let a page-cache-speed writer reach
/// ENOSPC next to the ballast.)
fn watch(ctx: &Ctx, files: &Files, mount: &std::path::Path) -> Option<u64> {
    let JobSpec::Disk {
        min_free_percent,
        min_free_bytes,
        ..
    } = ctx.spec
    else {
        return None;
    };
    let end = Instant::now() + POLL;
    let mut last: Option<(Instant, u64)> = None;
    let mut released = 0u64;
    let mut fastest = 0.0f64;
    while !ctx.stopping() {
        let Ok(fs) = observe::fs_usage(mount) else {
            break;
        };
        let now = Instant::now();
        let cap = fs.capacity_bytes() as f64;
        let floor = (min_free_percent / 100.0 * cap).max(min_free_bytes as f64);
        let margin = fs.avail_bytes as f64 - floor;
        let rate = match last {
            Some((t, a)) if a > fs.avail_bytes => {
                (a - fs.avail_bytes) as f64 / now.duration_since(t).as_secs_f64().max(1e-4)
            }
            _ => 0.0,
        };
        fastest = fastest.max(rate);
        let next = next_look(margin);
        let give = release_now(margin, rate, 0.01 * cap, next);
        if give > 0 && (rate > 0.0 || margin < 0.0) {
            match files.own() {
                Ok((own, list)) if own > 0 => {
                    let keep = own.saturating_sub(give);
                    if files.shrink_to(&list, keep).is_ok() {
                        released += own - keep;
                    }
                }
                _ => {}
            }
        }
        last = Some((now, fs.avail_bytes));
        if now >= end {
            break;
        }
        std::thread::sleep(next.min(end.saturating_duration_since(now)));
    }
    (released > 0).then(|| {
        tracing::info!(
            mount = %mount.display(),
            released,
            rate = fastest,
            "gave ballast back to a fast writer"
        );
        released
    })
}

/// Why the ballast directory cannot be used now, if it cannot: the path is not a mount
/// point (a filesystem that failed to mount leaves a bare directory on `/`), or the
/// filesystem there is not the one our open directory is on (unmounted under us).
fn unusable(mount: &std::path::Path, allow_plain: bool, held: Option<&Files>) -> Option<String> {
    if !allow_plain && !ballast::is_mount_point(mount) {
        return Some(format!(
            "{} is not a mount point (not mounted?); nothing is padded until it is \
             (set disk.allow_plain_directory to pad a plain directory)",
            mount.display()
        ));
    }
    let here = match std::fs::metadata(mount) {
        Ok(md) => crate::sys::fs::device(&md),
        Err(e) => return Some(format!("{}: {e}", mount.display())),
    };
    let f = held?;
    if crate::sys::fs::meta(&f.dir).is_ok_and(|st| st.dev != here) {
        return Some(format!(
            "the filesystem at {} changed under us (unmounted?); giving back what we held there",
            mount.display()
        ));
    }
    None
}

/// What the current job asks of this worker, read again at every poll (a pass may change
/// the level or the floor; a changed mount is another job).
struct Goal {
    level_percent: f64,
    min_free_percent: f64,
    min_free_bytes: u64,
    fill: Fill,
    allow_plain_directory: bool,
}

impl Goal {
    /// None when the job is gone or now pads another mount.
    fn of(spec: &JobSpec, mount: &std::path::Path) -> Option<Goal> {
        match spec {
            JobSpec::Disk {
                level_percent,
                min_free_percent,
                min_free_bytes,
                mount: m,
                fill,
                allow_plain_directory,
                ..
            } if m == mount => Some(Goal {
                level_percent: *level_percent,
                min_free_percent: *min_free_percent,
                min_free_bytes: *min_free_bytes,
                fill: *fill,
                allow_plain_directory: *allow_plain_directory,
            }),
            _ => None,
        }
    }
}

/// What the worker carries from one poll to the next.
#[derive(Default)]
struct Padding {
    /// Opened only while the mount is usable, and closed when it stops being so (holding
    /// it would keep a lazily unmounted filesystem alive).
    held: Option<Files>,
    /// Organic growth, bytes/s: rises at once, decays over ~10 s.
    growth: f64,
    /// When the last poll looked, and the organic bytes it saw.
    prev: Option<(Instant, f64)>,
    /// After a release for a fast writer: no regrowth until then, gentle regrowth for
    /// GENTLE after.
    hold_until: Option<Instant>,
}

pub fn run(ctx: &mut Ctx) -> Result<End> {
    let JobSpec::Disk { mount, .. } = ctx.spec.clone() else {
        return Ok(End::JobRemoved);
    };
    // Idle I/O class whatever the fill: writing noise is bulk I/O, and even fallocate's
    // metadata and the trims' journal writes must queue behind real work.
    ioprio_idle();
    let mut p = Padding::default();
    let end = loop {
        if let Err(end) = ctx.poll() {
            break end;
        }
        let Some(goal) = Goal::of(&ctx.spec, &mount) else {
            break End::JobRemoved;
        };
        if let Some(why) = unusable(&mount, goal.allow_plain_directory, p.held.as_ref()) {
            p.let_go(ctx, &mount, why);
            ctx.sleep(Duration::from_secs(1));
            continue;
        }
        if !p.open(ctx, &mount) {
            ctx.sleep(Duration::from_secs(5));
            continue;
        }
        let step = p.step(ctx, &mount, &goal);
        p.show(ctx, &mount, step);
        ctx.publish(false);
        let files = p.held.as_ref().expect("opened above");
        if let Some(released) = watch(ctx, files, &mount) {
            // Back off, then regrow gently.
            p.hold_until = Some(Instant::now() + HOLD);
            ctx.status.ballast_bytes = ctx.status.ballast_bytes.saturating_sub(released);
            p.prev = None;
        }
    };
    Ok(p.end(ctx, &mount, end))
}

impl Padding {
    /// The mount stopped being usable: give back what we held there, close it, say why.
    fn let_go(&mut self, ctx: &mut Ctx, mount: &std::path::Path, why: String) {
        if let Some(files) = self.held.take() {
            tracing::warn!(mount = %mount.display(), "{why}");
            if let Ok((_, list)) = files.own() {
                let _ = files.shrink_to(&list, 0);
            }
        }
        self.prev = None;
        ctx.status.ballast_bytes = 0;
        ctx.status.ballast_target_bytes = 0;
        ctx.status.synthetic_percent = 0.0;
        ctx.status.fill_rate_bytes_per_s = 0.0;
        ctx.status.limited_by = Some("not mounted".into());
        ctx.status.message = Some(why);
        ctx.publish(false);
    }

    /// Open the ballast directory unless it is open: false (and said in the status) when
    /// it is refused (not ours, planted) or unusable; an operator may fix it.
    fn open(&mut self, ctx: &mut Ctx, mount: &std::path::Path) -> bool {
        if self.held.is_some() {
            return true;
        }
        match ballast::open(mount, true) {
            Ok(Some(dir)) => {
                self.held = Some(Files {
                    dir,
                    noise: Noise::new(),
                });
                true
            }
            Ok(None) => unreachable!("open with create returns the directory"),
            Err(e) => {
                ctx.quiet.warn(
                    "ballast-dir",
                    format_args!("cannot use the ballast directory: {e}"),
                );
                ctx.status.ballast_bytes = 0;
                ctx.status.ballast_target_bytes = 0;
                ctx.status.synthetic_percent = 0.0;
                ctx.status.limited_by = Some("ballast directory refused".into());
                ctx.status.message = Some(e.to_string());
                ctx.publish(false);
                false
            }
        }
    }

    /// One poll: measure organic growth, decide the ballast, grow or trim toward it.
    fn step(
        &mut self,
        ctx: &mut Ctx,
        mount: &std::path::Path,
        goal: &Goal,
    ) -> std::io::Result<DiskStep> {
        let files = self.held.as_mut().expect("opened before a step");
        let (own, list) = files.own()?;
        let fs = observe::fs_usage(mount)?;
        let organic = fs.used_bytes.saturating_sub(own) as f64;
        if let Some((t, o)) = self.prev {
            let dt = t.elapsed().as_secs_f64().max(1e-3);
            let rate = ((organic - o) / dt).max(0.0);
            // Rise at once, decay over ~10 s: headroom follows a burst quickly and
            // relaxes slowly.
            self.growth = if rate > self.growth {
                rate
            } else {
                self.growth * (1.0 - (dt / 10.0).min(1.0))
            };
        }
        let last_poll = self.prev.map(|(t, _)| t);
        self.prev = Some((Instant::now(), organic));
        let step = target(
            goal.level_percent,
            goal.min_free_percent,
            goal.min_free_bytes,
            &fs,
            own,
            self.growth,
        );
        let slack = (fs.capacity_bytes() / 500).max(1 << 20);
        let now = Instant::now();
        let held_back = self.hold_until.is_some_and(|t| now < t);
        let gentle = self.hold_until.is_some_and(|t| now < t + GENTLE);
        if step.target_bytes < own {
            files.shrink_to(&list, step.target_bytes)?;
        } else if step.target_bytes > own + slack && !held_back {
            let add = step.target_bytes - own;
            let add = if gentle { add.min(REGROW_STEP) } else { add };
            files.grow(&list, add, goal.fill)?;
        }
        let now_own = files.own()?.0;
        let dt = last_poll
            .map_or(1.0, |t| t.elapsed().as_secs_f64())
            .max(1e-3);
        // growth of our own ballast since the last poll (shown while filling)
        ctx.status.fill_rate_bytes_per_s = if now_own > ctx.status.ballast_bytes {
            (now_own - ctx.status.ballast_bytes) as f64 / dt
        } else {
            0.0
        };
        ctx.status.ballast_bytes = now_own;
        ctx.status.synthetic_percent =
            crate::format::round2(observe::pct(ctx.status.ballast_bytes, fs.capacity_bytes()));
        Ok(step)
    }

    /// A step's outcome into the status (and, after a failure, what we give back).
    fn show(&mut self, ctx: &mut Ctx, mount: &std::path::Path, step: std::io::Result<DiskStep>) {
        match step {
            Ok(s) => {
                ctx.status.ballast_target_bytes = s.target_bytes;
                ctx.status.limited_by = s.limited_by;
                ctx.status.message = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                // Our own growth met a full filesystem (a writer took the space first):
                // nothing to give back beyond what the watch releases.
                ctx.quiet.warn(
                    "disk-enospc",
                    format_args!("{}: no space to grow the ballast: {e}", mount.display()),
                );
                self.hold_until = Some(Instant::now() + HOLD);
            }
            Err(e) => {
                // A vanished mount, an I/O error...: give back what we can and say so;
                // the next poll tries again.
                ctx.quiet.warn(
                    "disk-step",
                    format_args!("{}: disk step failed: {e}", mount.display()),
                );
                let files = self.held.as_ref().expect("opened before a step");
                if let Ok((_, list)) = files.own() {
                    let _ = files.shrink_to(&list, 0);
                }
                ctx.status.message = Some(format!("{e}"));
                ctx.status.ballast_bytes = files.own().map(|o| o.0).unwrap_or(0);
            }
        }
    }

    /// Whatever ends the worker cleanly gives the space back; only a crash leaves ballast,
    /// which the next worker adopts or `recover` deletes. (Not where the path no longer
    /// leads to the filesystem we padded: there is nothing of ours there.)
    fn end(self, ctx: &mut Ctx, mount: &std::path::Path, end: End) -> End {
        let was_usable = self.held.is_some();
        drop(self.held);
        if end == End::LockLost || !was_usable {
            return end;
        }
        match ballast::remove_all(mount) {
            Ok(r) => {
                tracing::info!(mount = %mount.display(), files = r.files, bytes = r.bytes, "ballast removed")
            }
            Err(e) => tracing::warn!(mount = %mount.display(), "cannot remove ballast: {e}"),
        }
        ctx.status.ballast_bytes = 0;
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MIB: u64 = 1 << 20;

    #[test]
    fn fills_gap_and_respects_floor() {
        let fs = FsUsage {
            used_bytes: 0,
            avail_bytes: 256 * MIB,
        };
        let s = target(50.0, 10.0, 0, &fs, 0, 0.0);
        assert_eq!(s.target_bytes, 128 * MIB);
        // organic at 200 MiB: the gap is gone
        let fs = FsUsage {
            used_bytes: 200 * MIB,
            avail_bytes: 56 * MIB,
        };
        assert_eq!(target(50.0, 10.0, 0, &fs, 0, 0.0).target_bytes, 0);
        // level 95 on an empty disk: floor 25.6 MiB + headroom 2.56 MiB bound it
        let fs = FsUsage {
            used_bytes: 0,
            avail_bytes: 256 * MIB,
        };
        let s = target(95.0, 10.0, 0, &fs, 0, 0.0);
        assert!(s.target_bytes <= 256 * MIB - s.floor_bytes - 2 * MIB);
        assert!(s.limited_by.is_some());
        // min_free_bytes larger than the percent floor wins
        assert_eq!(target(50.0, 10.0, 300 * MIB, &fs, 0, 0.0).target_bytes, 0);
    }

    #[test]
    fn a_thin_margin_is_looked_at_often_and_a_writer_is_outrun() {
        // 800 MB above the floor: a 2 GB/s writer needs 400 ms to eat it, so look again
        // when it could have eaten half (capped at the 200 ms poll); 10 MB: 5 ms
        assert_eq!(next_look(800e6), POLL);
        assert_eq!(next_look(10e6), LOOK_MIN);
        assert_eq!(next_look(-5e6), LOOK_MIN);
        let mid = next_look(100e6);
        assert!(mid > LOOK_MIN && mid < POLL, "{mid:?}");
        // nothing written: nothing released while the margin covers the headroom
        assert_eq!(release_now(50e6, 0.0, 20e6, POLL), 0);
        // a 1.5 GB/s writer, 60 MB above the floor, next look in 15 ms: it could take
        // 2 x 1.5e9 x 25 ms = 75 MB, plus 20 MB headroom: give back 35 MB
        let r = release_now(60e6, 1.5e9, 20e6, Duration::from_millis(15));
        assert!((r as f64 - 35e6).abs() < 1e3, "{r}");
        // below the floor already: at least the deficit
        assert!(release_now(-10e6, 0.0, 20e6, LOOK_MIN) >= 30_000_000);
    }

    #[test]
    fn fast_organic_growth_buys_headroom() {
        let fs = FsUsage {
            used_bytes: 180 * MIB,
            avail_bytes: 76 * MIB,
        };
        let calm = target(95.0, 10.0, 0, &fs, 100 * MIB, 0.0);
        let busy = target(95.0, 10.0, 0, &fs, 100 * MIB, 20.0 * MIB as f64);
        // half a second of 20 MiB/s: 10 MiB of headroom instead of 1 % (2.56 MiB)
        let diff =
            (calm.target_bytes - busy.target_bytes) as i64 - (10 * MIB - 256 * MIB / 100) as i64;
        assert!(diff.abs() <= 1, "{diff}");
    }
}
