//! peer rendezvous: rust-libp2p's rendezvous (libp2p-rendezvous) point and
//! client on a tcp + noise + yamux swarm serving ping and identify, for
//! tests/cli/rendezvous.sh. Lines on stdout:
//!
//!     peer rendezvous server [--listen MA] [--min-ttl S]
//!         "peer-id <id>", "listening <ma>/p2p/<id>", then per request
//!         "registered <peer> <ns> ttl=<s>", "register-refused <peer> <ns> <code>",
//!         "unregistered <peer> <ns>", "discover-served <enquirer> n=<count>",
//!         "discover-refused <enquirer> <code>", "expired <peer> <ns>"
//!
//!     peer rendezvous client --point MA --namespace NS [--listen MA] [--register]
//!         [--ttl S] [--find N] [--limit N] [--dial]
//!         registers (with --register; "registered <ns> ttl=<s>" or
//!         "register-failed <code>"), then discovers page by page with the
//!         cookie (--limit per page; "discovered <peer id> <multiaddr>" per
//!         address of each other peer, "page n=<count>" per answer, an empty
//!         page waits a second) until it has seen N other peers ("found N");
//!         with --dial it then connects to the first one ("connected <id>")
//!         and pings it ("ping <id> rtt=<ms> ms"). Stays up (serving ping) until
//!         SIGINT or SIGTERM; "discover-failed <code>" ends it with exit 1.
//!
//! rust-libp2p seals and reads peer records in its legacy envelope
//! ("libp2p-routing-state") only; a discover answer holding a standard record
//! fails as a whole (DiscoverFailed is not even reported: the request fails).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, rendezvous, tcp, yamux, Multiaddr, PeerId};

macro_rules! out {
    ($($arg:tt)*) => {{
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($arg)*);
        let _ = o.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Server {
    rendezvous: rendezvous::server::Behaviour,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

#[derive(NetworkBehaviour)]
struct Client {
    rendezvous: rendezvous::client::Behaviour,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

#[derive(Default)]
struct Options {
    listen: String,
    point: String,
    namespace: String,
    register: bool,
    dial: bool,
    ttl: Option<u64>,
    min_ttl: Option<u64>,
    find: usize,
    limit: Option<u64>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options { listen: "/ip4/127.0.0.1/tcp/0".into(), ..Default::default() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a.trim_start_matches('-');
        match name {
            "register" => {
                o.register = true;
                continue;
            }
            "dial" => {
                o.dial = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("flag needs an argument: -{name}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("invalid value {v:?} for flag -{name}"));
        match name {
            "listen" => o.listen = v.clone(),
            "point" => o.point = v.clone(),
            "namespace" => o.namespace = v.clone(),
            "ttl" => o.ttl = Some(num(v)?),
            "min-ttl" => o.min_ttl = Some(num(v)?),
            "find" => o.find = num(v)? as usize,
            "limit" => o.limit = Some(num(v)?),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(o)
}

fn identify_config(key: &libp2p::identity::Keypair) -> identify::Config {
    identify::Config::new("ipfs/0.1.0".into(), key.public()).with_agent_version("rust-interop".into())
}

async fn signals() -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())
}

async fn server(o: Options) -> Result<(), String> {
    let mut config = rendezvous::server::Config::default();
    if let Some(t) = o.min_ttl {
        config = config.with_min_ttl(t);
    }
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| Server {
            rendezvous: rendezvous::server::Behaviour::new(config),
            ping: ping::Behaviour::new(ping::Config::new()),
            identify: identify::Behaviour::new(identify_config(key)),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = *swarm.local_peer_id();
    out!("peer-id {id}");
    let ma: Multiaddr = o.listen.parse().map_err(|e| format!("listen {}: {e}", o.listen))?;
    swarm.listen_on(ma).map_err(|e| format!("listen {}: {e}", o.listen))?;
    let mut term = signals().await?;
    use rendezvous::server::Event as E;
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => out!("listening {address}/p2p/{id}"),
            SwarmEvent::Behaviour(ServerEvent::Rendezvous(e)) => match e {
                E::PeerRegistered { peer, registration } => {
                    out!("registered {peer} {} ttl={}", registration.namespace, registration.ttl)
                }
                E::PeerNotRegistered { peer, namespace, error } => {
                    out!("register-refused {peer} {namespace} {error:?}")
                }
                E::PeerUnregistered { peer, namespace } => out!("unregistered {peer} {namespace}"),
                E::DiscoverServed { enquirer, registrations } => {
                    out!("discover-served {enquirer} n={}", registrations.len())
                }
                E::DiscoverNotServed { enquirer, error } => out!("discover-refused {enquirer} {error:?}"),
                E::RegistrationExpired(r) => out!("expired {} {}", r.record.peer_id(), r.namespace),
            },
            _ => {}
        }
    }
}

async fn client(o: Options) -> Result<(), String> {
    let point_addr: Multiaddr = o.point.parse().map_err(|e| format!("point {}: {e}", o.point))?;
    let point = match point_addr.iter().last() {
        Some(Protocol::P2p(p)) => p,
        _ => return Err("--point needs /p2p/<id>".into()),
    };
    let ns = rendezvous::Namespace::new(o.namespace.clone()).map_err(|e| e.to_string())?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| Client {
            rendezvous: rendezvous::client::Behaviour::new(key.clone()),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(1))),
            identify: identify::Behaviour::new(identify_config(key)),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = *swarm.local_peer_id();
    out!("peer-id {id}");
    let ma: Multiaddr = o.listen.parse().map_err(|e| format!("listen {}: {e}", o.listen))?;
    swarm.listen_on(ma).map_err(|e| format!("listen {}: {e}", o.listen))?;
    swarm.dial(point_addr.clone()).map_err(|e| format!("dial {}: {e}", o.point))?;
    let mut term = signals().await?;
    let mut listening = false;
    let mut connected = false;
    let mut started = false;
    let mut seen: HashSet<PeerId> = HashSet::new();
    let mut first: Option<(PeerId, Vec<Multiaddr>)> = None;
    let mut cookie: Option<rendezvous::Cookie> = None;
    let mut dialed: Option<PeerId> = None;
    let mut found_told = false;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    let mut waiting = false;
    use rendezvous::client::Event as E;
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => Some(ev),
            _ = retry.tick(), if waiting => None,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let Some(ev) = ev else {
            waiting = false;
            swarm.behaviour_mut().rendezvous.discover(Some(ns.clone()), cookie.clone(), o.limit, point);
            continue;
        };
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                out!("listening {address}/p2p/{id}");
                swarm.add_external_address(address);
                listening = true;
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == point => connected = true,
            SwarmEvent::ConnectionEstablished { peer_id, .. } if Some(peer_id) == dialed => {
                out!("connected {peer_id}")
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                out!("dial-failed {} {error}", peer_id.map(|p| p.to_string()).unwrap_or_default());
                if peer_id == Some(point) {
                    return Err("cannot reach the point".into());
                }
            }
            SwarmEvent::Behaviour(ClientEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }))
                if Some(peer) == dialed =>
            {
                out!("ping {peer} rtt={:.2} ms", rtt.as_secs_f64() * 1000.0)
            }
            SwarmEvent::Behaviour(ClientEvent::Rendezvous(e)) => match e {
                E::Registered { namespace, ttl, .. } => {
                    out!("registered {namespace} ttl={ttl}");
                    if o.find > 0 {
                        swarm.behaviour_mut().rendezvous.discover(Some(ns.clone()), None, o.limit, point);
                    }
                }
                E::RegisterFailed { error, .. } => {
                    out!("register-failed {error:?}");
                    return Err("register failed".into());
                }
                E::Discovered { registrations, cookie: c, .. } => {
                    out!("page n={}", registrations.len());
                    let empty = registrations.is_empty();
                    for r in registrations {
                        let peer = r.record.peer_id();
                        if peer == id {
                            continue;
                        }
                        for a in r.record.addresses() {
                            out!("discovered {peer} {a}");
                        }
                        if seen.insert(peer) && first.is_none() {
                            first = Some((peer, r.record.addresses().to_vec()));
                        }
                    }
                    cookie = Some(c);
                    if seen.len() >= o.find && !found_told {
                        found_told = true;
                        out!("found {}", seen.len());
                        if o.dial {
                            if let Some((peer, addrs)) = first.clone() {
                                dialed = Some(peer);
                                let opts = DialOpts::peer_id(peer)
                                    .addresses(addrs)
                                    .condition(PeerCondition::Always)
                                    .build();
                                if let Err(e) = swarm.dial(opts) {
                                    out!("dial-failed {peer} {e}");
                                }
                            }
                        }
                    } else if !found_told {
                        if empty {
                            waiting = true;
                            retry.reset();
                        } else {
                            swarm.behaviour_mut().rendezvous.discover(Some(ns.clone()), cookie.clone(), o.limit, point);
                        }
                    }
                }
                E::DiscoverFailed { error, .. } => {
                    out!("discover-failed {error:?}");
                    return Err("discover failed".into());
                }
                E::Expired { peer } => out!("expired {peer}"),
            },
            _ => {}
        }
        if !started && connected && (listening || !o.register) {
            started = true;
            if o.register {
                if let Err(e) = swarm.behaviour_mut().rendezvous.register(ns.clone(), point, o.ttl) {
                    out!("register-failed {e}");
                    return Err("register failed".into());
                }
            } else if o.find > 0 {
                swarm.behaviour_mut().rendezvous.discover(Some(ns.clone()), None, o.limit, point);
            }
        }
    }
}

/// `peer rendezvous server|client ARGS...`: the exit code.
pub async fn main(args: &[String]) -> i32 {
    let (role, rest) = match args.split_first() {
        Some((r, rest)) if r == "server" || r == "client" => (r.clone(), rest),
        _ => {
            out!("error usage: peer rendezvous server|client [flags]");
            return 2;
        }
    };
    let o = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            out!("error usage {e}");
            return 2;
        }
    };
    if role == "client" && (o.point.is_empty() || o.namespace.is_empty()) {
        out!("error usage: client needs --point and --namespace");
        return 2;
    }
    let r = if role == "server" { server(o).await } else { client(o).await };
    match r {
        Ok(()) => 0,
        Err(e) => {
            out!("error {e}");
            1
        }
    }
}
