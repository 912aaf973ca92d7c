//! Rules: plain functions of two samples, their [`Rates`] and the profile, returning findings
//! with the numbers that triggered them, the cause and the exact fix. Grouped by family:
//! [`listen`] (accept and SYN queues), [`softnet`] (receive path and softirq CPU), [`fds`] (file
//! descriptors), [`memory`] (TCP memory), [`capacity`] (conntrack, ports, TIME_WAIT, orphans)
//! and [`delivery`] (advice: qdisc, congestion control, kTLS). Every threshold lives in [`crate::thresholds`]; every
//! value a remedy proposes comes from the profile or from [`crate::steps`].

mod capacity;
mod delivery;
mod fds;
mod listen;
mod memory;
mod softnet;

use crate::finding::Finding;
use crate::paths;
use crate::probe::{listeners::Listener, Sample};
use crate::profile::Profile;
use crate::rates::Rates;

const TCP_MEM: &str = "net.ipv4.tcp_mem";

/// All rules over two samples and their rates. Sorted: critical first.
pub fn evaluate(a: &Sample, b: &Sample, r: &Rates, profile: &Profile) -> Vec<Finding> {
    let mut f = Vec::new();
    listen::listen_overflows(a, b, r, &mut f);
    listen::accept_queue_full(b, &mut f);
    listen::syn_queue_drops(a, b, r, &mut f);
    softnet::softnet(r, b, &mut f);
    softnet::net_rx_imbalance(r, b, &mut f);
    softnet::softirq_cpu(r, &mut f);
    softnet::incoming_cpu_uncovered(r, b, &mut f);
    fds::process_fds(b, profile, &mut f);
    fds::system_fds(b, profile, &mut f);
    memory::tcp_memory(a, b, profile, &mut f);
    listen::tcp_backlog_drops(a, b, r, profile, &mut f);
    listen::somaxconn_low(b, &mut f);
    listen::syncookies_off(b, &mut f);
    capacity::conntrack(b, r, &mut f);
    capacity::ephemeral_ports(b, profile, &mut f);
    capacity::time_wait(a, b, r, &mut f);
    capacity::orphans(b, &mut f);
    for_the_host(&mut f, b);
    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
    f
}

/// Advice on the delivery path (severity Info): never changes the status.
pub fn advise(b: &Sample) -> Vec<Finding> {
    let mut f = Vec::new();
    delivery::qdisc_for_bbr(b, &mut f);
    delivery::notsent_lowat(b, &mut f);
    delivery::ktls(b, &mut f);
    delivery::incoming_cpu(b, &mut f);
    for_the_host(&mut f, b);
    f
}

/// In a child network namespace (a container, `unshare -n`) a global key does not exist:
/// its remedy is the host's to apply, and its value here could not be read (a step from it
/// assumes the kernel's default). Said on each such remedy, in one place for every rule.
fn for_the_host(f: &mut [Finding], b: &Sample) {
    let crate::probe::netns::Netns::Child(why) = &b.netns else {
        return;
    };
    for r in f.iter_mut().flat_map(|x| x.remedy.iter_mut()) {
        let key = r.text.split(" = ").next().unwrap_or_default();
        let global =
            crate::profile::key_info(key).is_some_and(|k| k.scope == crate::profile::Scope::Global);
        if r.kind == crate::finding::RemedyKind::Sysctl && global {
            r.host = Some(format!(
                "{key} is global: it exists only in the host's (initial) network namespace, and this \
                 process runs in another one ({why}). Apply it on the host; its value there cannot be \
                 read from here"
            ));
        }
    }
}

/// Online CPUs: /proc/stat's rows, else /proc/softirqs' columns.
fn online_cpus(b: &Sample) -> Option<std::collections::BTreeSet<u32>> {
    match (&b.stat, &b.softirqs) {
        (Some(st), _) => Some(st.cpus.iter().map(|(c, _)| *c).collect()),
        (None, Some(si)) => Some(si.cpus.iter().copied().collect()),
        (None, None) => None,
    }
}

/// The CPUs that do a NIC's receive work: where its receive-queue interrupts are delivered,
/// and the RPS targets of its queues. With the sources they were read from.
pub(super) fn receiving_cpus(
    n: &crate::probe::nic::Nic,
) -> (std::collections::BTreeSet<u32>, Vec<String>) {
    use crate::probe::interrupts::QueueKind;
    let mut cpus = std::collections::BTreeSet::new();
    let mut how = Vec::new();
    let mut irqs = 0;
    for i in n
        .irqs
        .iter()
        .filter(|i| matches!(i.kind, QueueKind::Rx | QueueKind::Combined))
    {
        let list = i.effective.as_deref().or(i.affinity.as_deref());
        if let Some(c) = list.and_then(|l| crate::probe::interrupts::parse_cpu_list(l).ok()) {
            cpus.extend(c);
            irqs += 1;
        }
    }
    if irqs > 0 {
        how.push(format!("{irqs} receive-queue IRQ(s)"));
    }
    let mut rps = 0;
    for q in &n.rx {
        let mask = q
            .rps_cpus
            .as_deref()
            .map(|m| crate::profile::parse_value(crate::profile::Shape::Mask, m));
        if let Some(Ok(words)) = mask {
            for (w, bits) in words.iter().enumerate() {
                cpus.extend(
                    (0..64)
                        .filter(|b| bits >> b & 1 == 1)
                        .map(|b| (w * 64 + b) as u32),
                );
            }
            rps += usize::from(words.iter().any(|w| *w != 0));
        }
    }
    if rps > 0 {
        how.push(format!("RPS on {rps} queue(s)"));
    }
    (cpus, how)
}

/// A file as evidence names it: `/proc/net/netstat`.
fn src(rel: &str) -> String {
    paths::shown(rel)
}

/// A sysctl's file as evidence names it: `/proc/sys/net/core/somaxconn`.
fn sysctl_src(key: &str) -> String {
    paths::shown(&paths::sysctl(key).to_string_lossy())
}

fn counter_increase(a: &Sample, b: &Sample, key: &str) -> Option<i64> {
    Some((b.counters.get(key)? - a.counters.get(key)?).max(0))
}

fn somaxconn(b: &Sample) -> Option<i64> {
    b.sysctls.int("net.core.somaxconn")
}

/// A profile value spelled as the kernel accepts it, for a remedy line.
fn profile_value(p: &Profile, key: &str) -> Option<String> {
    p.sysctls
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value_text())
}

fn describe_listener(l: &Listener) -> String {
    match l.backlog {
        Some(max) => format!("{} (accept queue {}/{})", l.address, l.accept_queue, max),
        None => format!(
            "{} (accept queue {}, max unknown)",
            l.address, l.accept_queue
        ),
    }
}

/// The `rps_cpus` mask selecting CPUs 0..ncpu, in the kernel's format: hex, comma-separated
/// 32-bit groups, most significant first (`3`, `ffffffff,ffffffff`, `f,ffffffff`).
pub fn rps_mask(ncpu: usize) -> String {
    let cpus: Vec<u32> = (0..ncpu.max(1) as u32).collect();
    crate::profile::format_value(crate::profile::Shape::Mask, &crate::profile::mask_of(&cpus))
}
