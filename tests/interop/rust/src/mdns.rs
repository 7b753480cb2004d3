//! peer mdns: rust-libp2p's own mDNS discovery (libp2p-mdns) on a tcp +
//! noise + yamux swarm serving ping and identify, for tests/cli/mdns_mixed.sh.
//! Lines on stdout, as cp2p mdns prints them: "peer-id <id>",
//! "listening <ma>/p2p/<id>", then "discovered <peer id> <multiaddr>" and
//! "expired <peer id> <multiaddr>" (the multiaddr without /p2p), and with
//! --dial "dialed <peer id> <multiaddr>" once an outbound connection to a
//! discovered peer is up (or "dial-failed <peer id> <reason>"). Exits 0 on
//! SIGINT or SIGTERM.
//!
//! Usage:
//!
//!     peer mdns [--listen MA] [--interval S] [--ttl S] [--dial]
//!
//! --interval is libp2p-mdns's query_interval (its default 300 s; it probes
//! at 0.5 s, 1 s, 2 s ... before that), --ttl the TTL of the records it
//! answers with (default 360 s). What libp2p-mdns does not do, so this peer
//! does not either: it sends no goodbye when it stops (its peers see it expire
//! by TTL only), it takes no goodbye (a TTL 0 record does not shorten an
//! entry: "expired" comes when the TTL first announced runs out), and it
//! announces nothing unasked (only answers queries). IPv4 only (its
//! enable_ipv6 picks one family).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, mdns, noise, ping, tcp, yamux, Multiaddr, PeerId};

macro_rules! out {
    ($($arg:tt)*) => {{
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($arg)*);
        let _ = o.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    mdns: mdns::tokio::Behaviour,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

struct Options {
    listen: String,
    interval: Option<Duration>,
    ttl: Option<Duration>,
    dial: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        listen: "/ip4/0.0.0.0/tcp/0".into(),
        interval: None,
        ttl: None,
        dial: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a.trim_start_matches('-');
        if name == "dial" {
            o.dial = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
        let secs = |v: &str| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("invalid value {v:?} for flag -{name}"))
        };
        match name {
            "listen" => o.listen = v.clone(),
            "interval" => o.interval = Some(secs(v)?),
            "ttl" => o.ttl = Some(secs(v)?),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(o)
}

/// addr without its trailing /p2p/<id>, as cp2p prints discovered addresses.
fn bare(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
        a.pop();
    }
    a
}

async fn run(o: Options) -> Result<(), String> {
    let mut config = mdns::Config::default();
    if let Some(i) = o.interval {
        config.query_interval = i;
    }
    if let Some(t) = o.ttl {
        config.ttl = t;
    }
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| {
            Ok(Behaviour {
                mdns: mdns::tokio::Behaviour::new(config, key.public().to_peer_id())?,
                ping: ping::Behaviour::new(ping::Config::new()),
                identify: identify::Behaviour::new(
                    identify::Config::new("ipfs/0.1.0".into(), key.public())
                        .with_agent_version("rust-interop".into()),
                ),
            })
        })
        .map_err(|e| format!("mdns: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = *swarm.local_peer_id();
    out!("peer-id {id}");
    let ma: Multiaddr = o
        .listen
        .parse()
        .map_err(|e| format!("listen {}: {e}", o.listen))?;
    swarm
        .listen_on(ma)
        .map_err(|e| format!("listen {}: {e}", o.listen))?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut dialing: HashSet<PeerId> = HashSet::new();
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => out!("listening {address}/p2p/{id}"),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    out!("discovered {peer} {}", bare(&addr));
                    if o.dial && dialing.insert(peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::Always)
                            .build();
                        if let Err(e) = swarm.dial(opts) {
                            out!("dial-failed {peer} {e}");
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(list))) => {
                for (peer, addr) in list {
                    out!("expired {peer} {}", bare(&addr));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint: ConnectedPoint::Dialer { address, .. },
                ..
            } if o.dial => out!("dialed {peer_id} {}", bare(&address)),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if o.dial => out!("dial-failed {peer} {error}"),
            _ => {}
        }
    }
}

/// `peer mdns ARGS...`: the exit code.
pub async fn main(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            out!("error usage {e}");
            return 2;
        }
    };
    match run(o).await {
        Ok(()) => 0,
        Err(e) => {
            out!("error {e}");
            1
        }
    }
}
