//! `peer autonat`: rust-libp2p's AutoNAT v1 behaviour, server and client at
//! once, for cp2p's AutoNAT tests (#18) on loopback: unlike `ready`, it takes
//! loopback and private addresses (only_global_ips off) and probes at a
//! test's pace.
//!
//!     peer autonat [--listen MA] [--dial MA] [--probe MA] [--interval S]
//!
//! --probe MA asks servers to dial MA besides the listen addresses (an
//! address nobody listens on makes the verdict private). Prints "peer-id
//! <id>", "listening <ma>/p2p/<id>", "connected <id>", "nat-status
//! public|private|unknown" when the verdict changes, "inbound-probe
//! response <peer> <addr>" / "inbound-probe error <peer> <error>" for what
//! its server did, "outbound-probe ..." likewise; and AutoNAT v2's server
//! and client beside it: "v2-server <client> <addr> ok|error ..." and
//! "v2-client <server> <addr> ok|error ...", until SIGINT or SIGTERM.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, identify, noise, ping, tcp, yamux, Multiaddr};

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Nat {
    autonat: autonat::Behaviour,
    v2s: autonat::v2::server::Behaviour,
    v2c: autonat::v2::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn status(s: &autonat::NatStatus) -> &'static str {
    match s {
        autonat::NatStatus::Public(_) => "public",
        autonat::NatStatus::Private => "private",
        autonat::NatStatus::Unknown => "unknown",
    }
}

pub async fn main(args: Vec<String>) -> i32 {
    let (mut listen, mut dial, mut probe, mut interval) = (None, None, None, 1.0f64);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match (a.trim_start_matches('-'), it.next()) {
            ("listen", Some(v)) => listen = Some(v),
            ("dial", Some(v)) => dial = Some(v),
            ("probe", Some(v)) => probe = Some(v),
            ("interval", Some(v)) if v.parse::<f64>().is_ok() => interval = v.parse().unwrap(),
            _ => {
                say!("error usage: peer autonat [--listen MA] [--dial MA] [--probe MA] [--interval S]");
                return 2;
            }
        }
    }
    let every = Duration::from_secs_f64(interval);
    let built = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_behaviour(|key| {
                let id = key.public().to_peer_id();
                Nat {
                    autonat: autonat::Behaviour::new(
                        id,
                        autonat::Config {
                            boot_delay: every,
                            retry_interval: every,
                            refresh_interval: every,
                            throttle_server_period: Duration::ZERO,
                            only_global_ips: false,
                            ..Default::default()
                        },
                    ),
                    v2s: Default::default(),
                    v2c: Default::default(), // probes every 5 s
                    identify: identify::Behaviour::new(
                        identify::Config::new("ipfs/0.1.0".into(), key.public())
                            .with_agent_version("rust-interop".into()),
                    ),
                    ping: ping::Behaviour::new(ping::Config::new()),
                }
            })
            .map_err(|e| e.to_string())
        });
    let mut swarm = match built {
        Ok(b) => b.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600))).build(),
        Err(e) => {
            say!("error {e}");
            return 1;
        }
    };
    let parse = |s: &str| -> Result<Multiaddr, String> { s.parse().map_err(|e| format!("{s}: {e}")) };
    if let Some(l) = listen {
        match parse(&l).map(|ma| swarm.listen_on(ma).map_err(|e| e.to_string())) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => {
                say!("error listen {e}");
                return 1;
            }
        }
    }
    say!("peer-id {}", swarm.local_peer_id());
    if let Some(p) = probe {
        match parse(&p) {
            Ok(ma) => swarm.behaviour_mut().autonat.probe_address(ma),
            Err(e) => {
                say!("error probe {e}");
                return 1;
            }
        }
    }
    if let Some(d) = dial {
        match parse(&d).map(|ma| swarm.dial(ma).map_err(|e| e.to_string())) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => {
                say!("error dial {e}");
                return 1;
            }
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    loop {
        tokio::select! {
            _ = term.recv() => return 0,
            _ = tokio::signal::ctrl_c() => return 0,
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => say!("listening {address}/p2p/{}", swarm.local_peer_id()),
                SwarmEvent::ConnectionEstablished { peer_id, .. } => say!("connected {peer_id}"),
                SwarmEvent::Behaviour(NatEvent::V2s(e)) => match e.result {
                    Ok(()) => say!("v2-server {} {} ok", e.client, e.tested_addr),
                    Err(err) => say!("v2-server {} {} error {err}", e.client, e.tested_addr),
                },
                SwarmEvent::Behaviour(NatEvent::V2c(e)) => match e.result {
                    Ok(()) => say!("v2-client {} {} ok", e.server, e.tested_addr),
                    Err(err) => say!("v2-client {} {} error {err}", e.server, e.tested_addr),
                },
                SwarmEvent::Behaviour(NatEvent::Autonat(e)) => match e {
                    autonat::Event::StatusChanged { new, .. } => say!("nat-status {}", status(&new)),
                    autonat::Event::InboundProbe(autonat::InboundProbeEvent::Response { peer, address, .. }) =>
                        say!("inbound-probe response {peer} {address}"),
                    autonat::Event::InboundProbe(autonat::InboundProbeEvent::Error { peer, error, .. }) =>
                        say!("inbound-probe error {peer} {error:?}"),
                    autonat::Event::OutboundProbe(autonat::OutboundProbeEvent::Response { peer, address, .. }) =>
                        say!("outbound-probe response {peer} {address}"),
                    autonat::Event::OutboundProbe(autonat::OutboundProbeEvent::Error { peer, error, .. }) =>
                        say!("outbound-probe error {} {error:?}", peer.map(|p| p.to_string()).unwrap_or_default()),
                    _ => {}
                },
                _ => {}
            },
        }
    }
}
