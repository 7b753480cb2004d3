//! `peer ready`: the rust-libp2p features cp2p gets in later issues, in one
//! swarm that their tests (#18 NAT traversal, #19 transports) start against:
//! tcp, quic-v1 and ws transports (noise + yamux; QUIC has its own), a
//! circuit relay v2 server and client, DCUtR, an AutoNAT v1 server, identify
//! and ping.
//!
//!     peer ready [--listen MA[,MA]...] [--external]
//!
//! --external confirms the listen addresses as external ones: rust-libp2p's
//! relay server takes reservations only once the host has a confirmed
//! external address (relay_interop.sh runs it on loopback).
//!
//! Prints "peer-id <id>" and one "listening <ma>/p2p/<id>" per address, then
//! "connected <id>" per connection, until SIGINT or SIGTERM (exit 0).

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
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--external" {
            external = true;
            continue;
        }
        match (a.trim_start_matches('-'), it.next()) {
            ("listen", Some(v)) => listen = v,
            _ => {
                say!("error usage: peer ready [--listen MA[,MA]...] [--external]");
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
                    ping: ping::Behaviour::new(ping::Config::new()),
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
                SwarmEvent::ConnectionEstablished { peer_id, .. } => say!("connected {peer_id}"),
                _ => {}
            },
        }
    }
}
