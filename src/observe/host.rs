//! What kind of host this is: distribution (from /etc/os-release), memory and its nominal
//! tier size, CPUs, cgroup limits, and whether we run in a container.
use crate::observe::CgroupLimits;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    /// centos, ubuntu, kylin, openeuler, or the os-release ID found ("linux" if none).
    pub platform: String,
    /// PRETTY_NAME from os-release, if any.
    pub os: Option<String>,
    /// The host's name (/proc/sys/kernel/hostname).
    pub hostname: String,
    pub memory_total_bytes: u64,
    /// The nominal size the tiers are resolved with (a 15.6 GiB VM is a 16 GiB host).
    pub memory_tier_gib: f64,
    pub memory_bounded_by_cgroup: bool,
    pub cpus: usize,
    pub usable_cpus: f64,
    pub cgroup: CgroupLimits,
    pub container: bool,
    /// The kernel release (uname -r).
    pub kernel: String,
    /// The memory page size in bytes (4 KiB on x86_64; 64 KiB on many aarch64 kernels).
    pub page_size: usize,
    /// Whether the kernel reports memory pressure (PSI, Linux >= 4.20 with it enabled).
    /// Without it the memory worker gives ballast back by MemAvailable alone.
    pub memory_psi: bool,
    /// Where the CPU burners run (status fills it in: from the live cpu worker, else what
    /// a worker would use here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_placement: Option<crate::control::job::Placement>,
}

/// Parse os-release text into (platform, pretty name). Known families are named the way
/// operators say them: RHEL clones that call themselves "centos" stay centos, Kylin's
/// several IDs (kylin, neokylin) become kylin, openEuler's "openEuler" becomes openeuler.
/// What the operating system says it is.
pub struct OsIdentity {
    /// "rhel", "ubuntu", ... (os-release's ID, families folded), or "windows".
    pub platform: String,
    /// PRETTY_NAME, or Windows' product name.
    pub os: Option<String>,
    pub kernel: String,
    pub container: bool,
}

pub fn parse_os_release(text: &str) -> (String, Option<String>) {
    let field = |k: &str| -> Option<String> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(k)?
                    .strip_prefix('=')
                    .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
            })
            .filter(|v| !v.is_empty())
    };
    let id = field("ID").unwrap_or_else(|| "linux".into()).to_lowercase();
    let like = field("ID_LIKE").unwrap_or_default().to_lowercase();
    let name = field("NAME").unwrap_or_default().to_lowercase();
    let platform = if id.contains("kylin") || name.contains("kylin") {
        "kylin".to_string()
    } else if id == "openeuler" || name.contains("openeuler") {
        "openeuler".to_string()
    } else if id == "centos" || (id == "rhel" && name.contains("centos")) {
        "centos".to_string()
    } else if id == "ubuntu" {
        "ubuntu".to_string()
    } else if id.is_empty() && like.contains("rhel") {
        "rhel".to_string()
    } else {
        id
    };
    (platform, field("PRETTY_NAME"))
}

pub fn detect() -> Host {
    let id = crate::observe::os_identity();
    let cgroup = crate::observe::read_cgroup_limits();
    let mem = crate::observe::read_memory(&cgroup).unwrap_or_default();
    Host {
        platform: id.platform,
        os: id.os,
        hostname: crate::observe::hostname(),
        memory_total_bytes: mem.total_bytes,
        memory_tier_gib: crate::control::desired::nominal_gib(mem.total_bytes),
        memory_bounded_by_cgroup: mem.cgroup_bounded,
        cpus: crate::observe::host_cpus(),
        usable_cpus: crate::observe::usable_cpus(&cgroup),
        cgroup,
        container: id.container,
        kernel: id.kernel,
        page_size: crate::sys::page_size(),
        memory_psi: crate::observe::read_memory_psi().is_some(),
        cpu_placement: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_distributions() {
        let cases = [
            (
                "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
                "centos",
                Some("CentOS Linux 7 (Core)"),
            ),
            (
                "NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
                "ubuntu",
                Some("Ubuntu 22.04.4 LTS"),
            ),
            (
                "NAME=\"Kylin Linux Advanced Server\"\nVERSION=\"V10 (Lance)\"\nID=\"kylin\"\nVERSION_ID=\"V10\"\nPRETTY_NAME=\"Kylin Linux Advanced Server V10 (Lance)\"\n",
                "kylin",
                Some("Kylin Linux Advanced Server V10 (Lance)"),
            ),
            (
                "NAME=\"openEuler\"\nVERSION=\"22.03 (LTS-SP3)\"\nID=\"openEuler\"\nVERSION_ID=\"22.03\"\nPRETTY_NAME=\"openEuler 22.03 (LTS-SP3)\"\nANSI_COLOR=\"0;31\"\n",
                "openeuler",
                Some("openEuler 22.03 (LTS-SP3)"),
            ),
            (
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
                "debian",
                Some("Debian GNU/Linux 12 (bookworm)"),
            ),
            (
                "NAME=\"NeoKylin Linux Server\"\nID=neokylin\n",
                "kylin",
                None,
            ),
            ("", "linux", None),
        ];
        for (text, platform, pretty) in cases {
            let (p, o) = parse_os_release(text);
            assert_eq!(p, platform, "{text}");
            assert_eq!(o.as_deref(), pretty);
        }
    }

    #[test]
    fn detects_this_host() {
        let h = detect();
        assert!(h.memory_total_bytes > 0 && h.cpus > 0);
        assert!(h.memory_tier_gib >= 1.0);
    }
}
