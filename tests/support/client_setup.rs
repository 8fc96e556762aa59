//! Setting up the delivery client in tests: a monoio runtime with its timer, a `[delivery]`
//! section for a receiver on loopback, and a client with one resolver thread.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use hookd::config::DeliveryConfig;
use hookd::deliver::client::{Client, ClientConfig, Resolver};

/// Runs `f` on a fresh monoio runtime with its timer enabled (the client's timeouts need it).
pub fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(f)
}

/// Generous timeouts, private networks allowed (receivers are on loopback), and
/// `pipeline_depth` requests at most on one connection (1: no pipelining).
pub fn delivery(pipeline_depth: u32) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        allow_private_networks: true,
        pipeline_depth,
        ..DeliveryConfig::default()
    }
}

/// A client for `delivery`, resolving on one thread of its own.
pub fn client(delivery: &DeliveryConfig) -> Client {
    let config = ClientConfig::from_config(delivery).expect("client config");
    Client::new(config, Resolver::start(1).expect("resolver"))
}
