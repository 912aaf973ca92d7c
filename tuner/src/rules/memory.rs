use super::*;
use crate::finding::{ev, Remedy, Severity};
use crate::thresholds::Rule;

pub(super) fn tcp_memory(a: &Sample, b: &Sample, p: &Profile, f: &mut Vec<Finding>) {
    let Some(ss) = &b.sockstat else { return };
    let Some(mem) = b.sysctls.ints(TCP_MEM).filter(|m| m.len() == 3) else {
        return;
    };
    let (pressure, high) = (mem[1].max(1) as f64, mem[2].max(1) as f64);
    let used = ss.tcp_mem_pages as f64;
    let pct_pressure = 100.0 * used / pressure;
    let pct_high = 100.0 * used / high;
    let t = Rule::TcpMemory.threshold();
    let pressures = counter_increase(a, b, "TcpExt:TCPMemoryPressures").unwrap_or(0);
    let aborts = counter_increase(a, b, "TcpExt:TCPAbortOnMemory").unwrap_or(0);
    let sev = if t.crit.is_some_and(|c| pct_high > c) || aborts > 0 {
        Severity::Critical
    } else if t.warn.is_some_and(|w| pct_pressure > w) || pressures > 0 {
        Severity::Warning
    } else {
        return;
    };
    let page_kib = 4.0;
    f.push(Finding {
        rule: Rule::TcpMemory,
        severity: sev,
        subject: "system".into(),
        summary: format!(
            "TCP sockets use {} pages ({:.0} MiB): {pct_pressure:.0}% of the pressure mark, {pct_high:.0}% of the hard limit",
            ss.tcp_mem_pages,
            used * page_kib / 1024.0
        ),
        evidence: vec![
            ev("TCP mem", used, "pages", src(paths::SOCKSTAT)),
            ev("tcp_mem pressure", pressure, "pages", format!("{} field 2", sysctl_src(TCP_MEM))),
            ev("tcp_mem high", high, "pages", format!("{} field 3", sysctl_src(TCP_MEM))),
            ev("TcpExt:TCPMemoryPressures increase", pressures as f64, "", src(paths::NETSTAT)),
            ev("TcpExt:TCPAbortOnMemory increase", aborts as f64, "", src(paths::NETSTAT)),
        ],
        cause: "Socket buffers of all TCP connections approach tcp_mem, so the kernel shrinks windows (pressure) and at the high mark aborts connections.".into(),
        remedy: vec![
            Remedy::sysctl(TCP_MEM, format!("{} {} {}", mem[0].saturating_mul(2), mem[1].saturating_mul(2), mem[2].saturating_mul(2))),
        ]
        .into_iter()
        .chain(profile_value(p, "net.ipv4.tcp_wmem").map(|v| {
            Remedy::sysctl("net.ipv4.tcp_wmem", format!("{v}   (cap per-socket send buffers; 16 MiB x 50k sockets exceeds any RAM)"))
        }))
        .collect(),
    });
}
