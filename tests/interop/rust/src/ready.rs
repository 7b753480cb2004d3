//! `peer ready`: the rust-libp2p features cp2p gets in later issues, in one
//! swarm that their tests (#18 NAT traversal, #19 transports) start against:
//! tcp, quic-v1 and ws transports (noise + yamux; QUIC has its own), a
//! circuit relay v2 server and client, DCUtR, an AutoNAT v1 server, identify
//! and ping.
//!
//!     peer ready [--listen MA[,MA]...] [--external] [--relay MA] [--dial MA [--ping N]]
//!
//! --relay reserves on that circuit relay and listens through it (its
//! "listening <relay>/p2p-circuit/p2p/<id>" line comes once the relay took
//! the reservation); --dial dials MA (a /p2p-circuit address too), prints
//! "connected <id> relayed=<bool>" and N "ping rtt=<ms> ms" lines, then exits 0.
//!
//! --external confirms the listen addresses as external ones: rust-libp2p's
//! relay server takes reservations only once the host has a confirmed
//! external address (relay_interop.sh runs it on loopback).
//!
//! Prints "peer-id <id>" and one "listening <ma>/p2p/<id>" per address, then
//! "connected <id>" and "connection <id> <remote address>" per connection,
//! and "dcutr <id> ok" or "dcutr <id> failed <error>" per hole punch (DCUtR),
//! until SIGINT or SIGTERM (exit 0).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, dcutr, identify, noise, ping, relay, tcp, yamux, Multiaddr};

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Ready {
    relay: relay::Behaviour,
    relay_client: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

pub async fn main(args: Vec<String>) -> i32 {
    let mut listen = "/ip4/127.0.0.1/tcp/0".to_string();
    let mut external = false;
    let mut relay_at: Option<String> = None;
    let mut dial: Option<String> = None;
    let mut want_pings: u32 = 1;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--external" {
            external = true;
            continue;
        }
        match (a.trim_start_matches('-'), it.next()) {
            ("listen", Some(v)) => listen = v,
            ("relay", Some(v)) => relay_at = Some(v),
            ("dial", Some(v)) => dial = Some(v),
            ("ping", Some(v)) if v.parse::<u32>().is_ok() => want_pings = v.parse().unwrap(),
            _ => {
                say!("error usage: peer ready [--listen MA[,MA]...] [--external] [--relay MA] [--dial MA [--ping N]]");
                return 2;
            }
        }
    }
    let built = async {
        let b = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_quic()
            .with_dns()
            .map_err(|e| e.to_string())?
            .with_websocket(noise::Config::new, yamux::Config::default)
            .await
            .map_err(|e| e.to_string())?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_behaviour(|key, relay_client| {
                let id = key.public().to_peer_id();
                Ready {
                    relay: relay::Behaviour::new(id, Default::default()),
                    relay_client,
                    dcutr: dcutr::Behaviour::new(id),
                    autonat: autonat::Behaviour::new(id, Default::default()),
                    identify: identify::Behaviour::new(
                        identify::Config::new("ipfs/0.1.0".into(), key.public())
                            .with_agent_version("rust-interop".into()),
                    ),
                    ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_millis(500))),
                }
            })
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(b.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600))).build())
    };
    let mut swarm = match built.await {
        Ok(s) => s,
        Err(e) => {
            say!("error {e}");
            return 1;
        }
    };
    for l in listen.split(',') {
        let ma: Multiaddr = match l.parse() {
            Ok(m) => m,
            Err(e) => {
                say!("error listen {l}: {e}");
                return 1;
            }
        };
        if let Err(e) = swarm.listen_on(ma) {
            say!("error listen {l}: {e}");
            return 1;
        }
    }
    say!("peer-id {}", swarm.local_peer_id());
    if let Some(r) = &relay_at {
        let ma: Multiaddr = match format!("{r}/p2p-circuit").parse() {
            Ok(m) => m,
            Err(e) => {
                say!("error relay {r}: {e}");
                return 1;
            }
        };
        if let Err(e) = swarm.listen_on(ma) {
            say!("error relay {r}: {e}");
            return 1;
        }
    }
    let mut target = None;
    if let Some(d) = &dial {
        let ma: Multiaddr = match d.parse() {
            Ok(m) => m,
            Err(e) => {
                say!("error dial {d}: {e}");
                return 1;
            }
        };
        target = ma.iter().filter_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(id) => Some(id),
            _ => None,
        }).last();
        if let Err(e) = swarm.dial(ma) {
            say!("error dial {d}: {e}");
            return 1;
        }
    }
    let mut pings = 0;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    loop {
        tokio::select! {
            _ = term.recv() => return 0,
            _ = tokio::signal::ctrl_c() => return 0,
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if external {
                        swarm.add_external_address(address.clone());
                    }
                    say!("listening {address}/p2p/{}", swarm.local_peer_id())
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    say!("connected {peer_id} relayed={}", endpoint.is_relayed());
                    say!("connection {peer_id} {}", endpoint.get_remote_address());
                }
                SwarmEvent::Behaviour(ReadyEvent::Dcutr(dcutr::Event { remote_peer_id, result })) => match result {
                    Ok(_) => say!("dcutr {remote_peer_id} ok"),
                    Err(e) => say!("dcutr {remote_peer_id} failed {e}"),
                },
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } if peer_id.is_some() && peer_id == target => {
                    say!("error dial: {error}");
                    return 1;
                }
                SwarmEvent::Behaviour(ReadyEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) if Some(peer) == target => {
                    say!("ping rtt={:.3} ms", rtt.as_secs_f64() * 1000.0);
                    pings += 1;
                    if pings >= want_pings {
                        return 0;
                    }
                }
                _ => {}
            },
        }
    }
}
