//! Which CPUs a process may run on, from `/proc/self/status` (`Cpus_allowed_list`), for the
//! server's `--incoming-cpu`, the load harness's floor server and the tuner, which must agree.

/// The CPUs this process may run on, in order; empty when it cannot be read.
pub fn allowed() -> Vec<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .and_then(|v| parse_list(v).ok())
        })
        .map(|cpus| cpus.into_iter().map(|c| c as usize).collect())
        .unwrap_or_default()
}

/// A CPU list as the kernel prints it (`0-3,8,10-11`): `Cpus_allowed_list`, `/sys/devices/system/cpu/online`,
/// an IRQ's `smp_affinity_list`.
pub fn parse_list(text: &str) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list element {part:?}");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if a > b || b > 65535 {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kernel_cpu_lists() {
        assert_eq!(parse_list("0-1\n"), Ok(vec![0, 1]));
        assert_eq!(parse_list("0-2,8,10-11"), Ok(vec![0, 1, 2, 8, 10, 11]));
        assert_eq!(parse_list("5"), Ok(vec![5]));
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("").is_err());
        assert!(parse_list("x").is_err());
        assert!(!allowed().is_empty(), "this process runs somewhere");
    }
}
