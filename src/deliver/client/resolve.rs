//! Name resolution off the shard: resolver threads fed by a bounded queue, answering through a
//! oneshot, and a per-shard cache of resolved names.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use monoio::time::Instant;

use super::oneshot;
use super::{DNS_CACHE_MAX, DNS_TTL, RESOLVER_QUEUE_MAX};

/// Resolved names of one shard, each kept for [`DNS_TTL`].
#[derive(Default)]
pub(super) struct DnsCache {
    entries: HashMap<String, (Vec<IpAddr>, Instant)>,
}

impl DnsCache {
    pub(super) fn get(&self, host: &str, now: Instant) -> Option<Vec<IpAddr>> {
        let (ips, at) = self.entries.get(host)?;
        (now.saturating_duration_since(*at) < DNS_TTL).then(|| ips.clone())
    }

    pub(super) fn put(&mut self, host: &str, ips: Vec<IpAddr>, now: Instant) {
        if self.entries.len() >= DNS_CACHE_MAX && !self.entries.contains_key(host) {
            self.entries
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < DNS_TTL);
            if self.entries.len() >= DNS_CACHE_MAX {
                self.entries.clear();
            }
        }
        self.entries.insert(host.to_owned(), (ips, now));
    }
}

/// Name resolution off the shards: `getaddrinfo` blocks, so lookups run on a few threads
/// of their own, fed by one bounded queue shared by every shard. The answer comes back
/// through a one-shot slot that wakes the waiting task (monoio's `sync` feature makes that
/// cross-thread wake work). A lookup whose waiter gave up still runs to its end; the
/// threads exit once the `Resolver` is dropped and the queue is empty.
pub struct Resolver {
    jobs: crossbeam_channel::Sender<Lookup>,
}

type Answer = Result<Vec<IpAddr>, String>;

struct Lookup {
    host: String,
    port: u16,
    reply: oneshot::Sender<Answer>,
}

impl Resolver {
    /// Starts `threads` resolver threads (at least one).
    pub fn start(threads: usize) -> io::Result<Arc<Self>> {
        let (jobs, queue) = crossbeam_channel::bounded::<Lookup>(RESOLVER_QUEUE_MAX);
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hookd-resolve-{i}"))
                .spawn(move || {
                    for job in queue.iter() {
                        let answer = lookup_blocking(&job.host, job.port);
                        // The lookup's caller may have given up (timed out): nothing to do.
                        let _ = job.reply.send(answer);
                    }
                })?;
        }
        Ok(Arc::new(Self { jobs }))
    }

    /// Queues a lookup of `host`; the future gives the answer (`None` if the threads died).
    pub(super) fn lookup(
        &self,
        host: &str,
        port: u16,
    ) -> Result<oneshot::Receiver<Answer>, String> {
        let (reply, answer) = oneshot::channel();
        let job = Lookup {
            host: host.to_owned(),
            port,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => {
                format!("the resolver queue is full ({RESOLVER_QUEUE_MAX} lookups waiting)")
            }
            crossbeam_channel::TrySendError::Disconnected(_) => {
                "the resolver threads have stopped".to_owned()
            }
        })?;
        Ok(answer)
    }
}

/// `getaddrinfo`, on a resolver thread: the distinct addresses in the order given.
fn lookup_blocking(host: &str, port: u16) -> Answer {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_cache_expires_and_stays_bounded() {
        let mut cache = DnsCache::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        cache.put("a.test", vec![ip], t0);
        assert_eq!(cache.get("a.test", t0), Some(vec![ip]));
        assert_eq!(cache.get("a.test", t0 + DNS_TTL), None);
        for i in 0..DNS_CACHE_MAX + 10 {
            cache.put(&format!("h{i}.test"), vec![ip], t0);
        }
        assert!(cache.entries.len() <= DNS_CACHE_MAX);
    }

    #[test]
    fn resolver_answers_through_the_oneshot() {
        let resolver = Resolver::start(1).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let answer = resolver.lookup("localhost", 80).unwrap().await;
            let ips = answer.expect("sent").expect("localhost resolves");
            assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
            let answer = resolver.lookup("name.invalid", 80).unwrap().await;
            assert!(answer.expect("sent").is_err());
        });
        // A sender dropped unsent wakes its receiver with `None`.
        let (tx, rx) = oneshot::channel::<u8>();
        let waiter = std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .build()
                .unwrap();
            rt.block_on(rx).ok()
        });
        drop(tx);
        assert_eq!(waiter.join().unwrap(), None);
    }
}
