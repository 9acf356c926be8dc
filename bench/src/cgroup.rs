//! Figure 6: a CPU quota equal to Lambda's CPU share at a memory size, as a cgroup v1 of our own.
//!
//! Lambda allocates CPU in proportion to the configured memory, and at 1,769 MB a function has the
//! equivalent of one vCPU (AWS Lambda developer guide, "Configure Lambda function memory",
//! <https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>). A function at `m` MB
//! therefore gets `m / 1769` of a CPU, which the cgroup v1 cpu controller enforces as a CFS quota:
//! `cpu.cfs_quota_us = cpu.cfs_period_us * m / 1769`. A cpuacct group beside it measures the CPU
//! time the function's process (all its threads) used.
//!
//! Each group is created under the controller's mount (`/sys/fs/cgroup/cpu`,
//! `/sys/fs/cgroup/cpuacct`) with a name of this process's own, and removed on drop. A process is
//! put into both groups between fork and exec (`pre_exec`), so all it runs is under the quota.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lambda's memory size with the CPU of one vCPU (see the module docs).
pub const LAMBDA_MB_PER_VCPU: u32 = 1_769;
/// Lambda's smallest and largest memory sizes (same page).
pub const LAMBDA_MIN_MEMORY_MB: u32 = 128;
pub const LAMBDA_MAX_MEMORY_MB: u32 = 10_240;
/// The CFS period of our groups: the kernel's default.
pub const CFS_PERIOD_US: u64 = 100_000;

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
const CPUACCT_ROOT: &str = "/sys/fs/cgroup/cpuacct";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "{memory_mb} MB is not a Lambda memory size ({LAMBDA_MIN_MEMORY_MB} to {LAMBDA_MAX_MEMORY_MB} MB)"
    )]
    MemorySize { memory_mb: u32 },
    #[error("cgroup v1 cpu controller not writable at {path}: {source}")]
    Unavailable { path: PathBuf, source: std::io::Error },
    #[error("cgroup file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The CFS quota, in microseconds per [`CFS_PERIOD_US`], of Lambda's CPU share at `memory_mb`.
pub fn lambda_cfs_quota_us(memory_mb: u32) -> Result<u64, CgroupError> {
    if !(LAMBDA_MIN_MEMORY_MB..=LAMBDA_MAX_MEMORY_MB).contains(&memory_mb) {
        return Err(CgroupError::MemorySize { memory_mb });
    }
    Ok((CFS_PERIOD_US * u64::from(memory_mb)).div_ceil(u64::from(LAMBDA_MB_PER_VCPU)))
}

/// A cpu group with Lambda's quota at one memory size and a cpuacct group beside it.
pub struct LambdaCpuShare {
    pub memory_mb: u32,
    pub quota_us: u64,
    cpu_dir: PathBuf,
    cpuacct_dir: PathBuf,
    procs: [CString; 2],
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let io = |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    text.trim().parse().map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{e}: {text:?}"),
        ))
    })
}

impl LambdaCpuShare {
    /// Creates the groups (named after this process and `label`) with the quota of `memory_mb`.
    pub fn create(label: &str, memory_mb: u32) -> Result<Self, CgroupError> {
        let quota_us = lambda_cfs_quota_us(memory_mb)?;
        let name = format!("pipeline-bench-{}-{label}-{memory_mb}mb", std::process::id());
        let cpu_dir = Path::new(CPU_ROOT).join(&name);
        let cpuacct_dir = Path::new(CPUACCT_ROOT).join(&name);
        for dir in [&cpu_dir, &cpuacct_dir] {
            std::fs::create_dir(dir).map_err(|source| CgroupError::Unavailable {
                path: dir.clone(),
                source,
            })?;
        }
        let procs = |dir: &Path| {
            CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes()).map_err(|e| {
                CgroupError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                }
            })
        };
        let share = Self {
            memory_mb,
            quota_us,
            procs: [procs(&cpu_dir)?, procs(&cpuacct_dir)?],
            cpu_dir,
            cpuacct_dir,
        };
        write(
            &share.cpu_dir.join("cpu.cfs_period_us"),
            &CFS_PERIOD_US.to_string(),
        )?;
        write(&share.cpu_dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
        Ok(share)
    }

    /// Whether groups can be made here (root and a writable v1 cpu controller), else why not.
    pub fn probe() -> Result<(), CgroupError> {
        Self::create("probe", LAMBDA_MB_PER_VCPU).map(drop)
    }

    /// CPU time used by every process ever put into the group (cpuacct.usage).
    pub fn cpu_used(&self) -> Result<Duration, CgroupError> {
        read_u64(&self.cpuacct_dir.join("cpuacct.usage")).map(Duration::from_nanos)
    }

    /// Periods in which the group was throttled (cpu.stat `nr_throttled`): proof the quota bit.
    pub fn throttled_periods(&self) -> Result<u64, CgroupError> {
        let path = self.cpu_dir.join("cpu.stat");
        let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Makes `command`'s process join both groups before it executes anything.
    pub fn confine(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let procs = self.procs.clone();
        // SAFETY: between fork and exec the closure only calls open, write and close (all
        // async-signal-safe) on paths allocated before the fork. Writing "0" to cgroup.procs
        // moves the writing process itself (cgroup v1).
        unsafe {
            command.pre_exec(move || {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

impl Drop for LambdaCpuShare {
    fn drop(&mut self) {
        // A group can only be removed once its processes are gone; the caller reaps them first.
        for dir in [&self.cpu_dir, &self.cpuacct_dir] {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_quota_is_lambdas_share_of_one_cpu_at_and_across_the_sizes() {
        assert_eq!(lambda_cfs_quota_us(1_769).unwrap(), 100_000);
        // 128 MB: 7.24 % of a CPU, rounded up to the microsecond.
        assert_eq!(lambda_cfs_quota_us(128).unwrap(), 7_236);
        assert_eq!(lambda_cfs_quota_us(1_024).unwrap(), 57_886);
        assert_eq!(lambda_cfs_quota_us(3_538).unwrap(), 200_000);
        assert_eq!(lambda_cfs_quota_us(10_240).unwrap(), 578_859);
        for outside in [0, 127, 10_241] {
            assert!(matches!(
                lambda_cfs_quota_us(outside),
                Err(CgroupError::MemorySize { .. })
            ));
        }
    }

    /// A busy loop confined at 128 MB's share uses about 7 % of the wall time it runs, where an
    /// unconfined one uses all of it. Needs root and a writable cgroup v1 cpu controller; where
    /// there is none, it says so and checks nothing else.
    #[test]
    fn a_confined_process_gets_no_more_than_its_share() {
        let share = match LambdaCpuShare::create("test", 128) {
            Ok(share) => share,
            Err(error) => {
                eprintln!("skipped: {error}");
                return;
            }
        };
        let mut command = std::process::Command::new("sh");
        command.args([
            "-c",
            "end=$(($(date +%s%N) + 600000000)); while [ $(date +%s%N) -lt $end ]; do :; done",
        ]);
        share.confine(&mut command);
        let started = Instant::now();
        let status = command.status().unwrap();
        let wall = started.elapsed();
        assert!(status.success());
        let used = share.cpu_used().unwrap();
        let fraction = used.as_secs_f64() / wall.as_secs_f64();
        assert!(
            used > Duration::ZERO && fraction < 0.15,
            "used {used:?} of {wall:?} ({fraction:.3}); the quota is 7.2 %"
        );
        assert!(share.throttled_periods().unwrap() > 0);
    }
}
