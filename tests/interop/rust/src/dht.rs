//! The rust-libp2p side of the mixed DHT scenario (tests/cli/dht_mixed.sh),
//! the twin of ../../go/dht.go: "peer dht [--listen MA] [--bootstrap MA]...
//! [--serve] [--timeout S]" runs a libp2p-kad server (Mode::Server, set
//! explicitly: rust-libp2p would otherwise stay a client until it has a
//! confirmed external address) on /ipfs/kad/1.0.0 over tcp + noise + yamux,
//! with a memory store, driven by the same stdin lines as `cp2p dht` and
//! ../../dht.mjs and printing the same result lines:
//!
//!     PUT <key> <value>     Successfully put record "k" | Failed to put record "k": ...
//!     GET <key>             Got record "k" "v" | Failed to get record "k": ...
//!     PUT_PROVIDER <key>    Successfully put provider record "k" | Failed to put provider record "k": ...
//!     GET_PROVIDERS <key>   Peer <id> provides key "k"... | No providers found for key "k"
//!     FIND_PEER <peer id>   Peer <id> has address <ma>... | Failed to find peer <id>: ...
//!
//! First "Local peer id: <id>" and "Listening on <ma>/p2p/<id>". A provider
//! key that is a CID (base32 "b..." or base58 "z..."/"Qm...") means its
//! multihash, as on the other peers; any other key is its bytes. libp2p-kad
//! takes any key, with or without a namespace, and any value: it has no
//! validators. Lines run one after the other; at the end of stdin the program
//! exits 0, or with --serve keeps serving until SIGINT/SIGTERM. Exit 1 with an
//! "error ..." line when the node cannot start, 2 on a usage error.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{
    self, store::MemoryStore, GetProvidersOk, GetRecordOk, Mode, QueryId, QueryResult,
};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::mpsc;

const KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
const USAGE: &str =
    "Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | GET_PROVIDERS <key> | FIND_PEER <peer id>";

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

struct Options {
    listen: String,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    serve: bool,
    timeout: u64,
}

/// The command in flight.
enum Cmd {
    Put(String),
    Get(String),
    Provide(String),
    Providers(String, HashSet<PeerId>),
    FindPeer(String, PeerId),
}

fn usage(msg: String) -> i32 {
    say!("error usage {msg}");
    2
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        listen: "/ip4/127.0.0.1/tcp/0".into(),
        bootstrap: Vec::new(),
        serve: false,
        timeout: 30,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let name = arg.trim_start_matches('-');
        if name == "serve" {
            o.serve = true;
            continue;
        }
        let value = it
            .next()
            .ok_or(format!("flag needs an argument: -{name}"))?;
        match name {
            "listen" => o.listen = value,
            "timeout" => {
                o.timeout = value
                    .parse()
                    .map_err(|_| format!("invalid value {value:?} for -timeout"))?
            }
            "bootstrap" => {
                let mut ma: Multiaddr = value
                    .parse()
                    .map_err(|e| format!("bootstrap {value}: {e}"))?;
                match ma.pop() {
                    Some(Protocol::P2p(p)) => o.bootstrap.push((p, ma)),
                    _ => return Err(format!("bootstrap {value}: no /p2p/ peer id at the end")),
                }
            }
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(o)
}

/// base32 (RFC 4648, lower case, no padding) as multibase "b" writes it.
fn base32(s: &str) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// base58btc, as multibase "z" and CIDv0 write it.
fn base58(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut num: Vec<u8> = Vec::new(); // little-endian base-256
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in num.iter_mut() {
            carry += *b as u32 * 58;
            *b = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            num.push(carry as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(num.iter().rev());
    Some(out)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(9) {
        v |= ((x & 0x7f) as u64) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// A CID's multihash: version 0 is the multihash itself, version 1 is
/// <version><codec><multihash>.
fn cid_multihash(s: &str) -> Option<Vec<u8>> {
    let bytes = if s.len() == 46 && s.starts_with("Qm") {
        return base58(s);
    } else if let Some(rest) = s.strip_prefix('b') {
        base32(rest)?
    } else if let Some(rest) = s.strip_prefix('z') {
        base58(rest)?
    } else {
        return None;
    };
    let (version, rest) = varint(&bytes)?;
    let (_codec, mh) = varint(rest)?;
    let (_code, digest) = varint(mh)?;
    let (len, digest) = varint(digest)?;
    (version == 1 && digest.len() as u64 == len).then(|| mh.to_vec())
}

fn provider_key(s: &str) -> kad::RecordKey {
    kad::RecordKey::new(&cid_multihash(s).unwrap_or_else(|| s.as_bytes().to_vec()))
}

/// The first blank-separated word of s, and the rest.
fn next_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn build(o: &Options) -> Result<Swarm<Behaviour>, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|x| e(&x))?
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut cfg = kad::Config::new(KAD);
            cfg.set_query_timeout(Duration::from_secs(o.timeout));
            let mut kad = kad::Behaviour::with_config(id, MemoryStore::new(id), cfg);
            kad.set_mode(Some(Mode::Server));
            Behaviour {
                kad,
                identify: identify::Behaviour::new(
                    identify::Config::new("ipfs/0.1.0".into(), key.public())
                        .with_agent_version("rust-interop".into()),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
            }
        })
        .map_err(|x| e(&x))?
        // The network is kept whole for the length of the test.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build())
}

struct Node {
    swarm: Swarm<Behaviour>,
    /// What the routing table says of each peer's addresses.
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    current: Option<(QueryId, Cmd)>,
}

impl Node {
    /// Starts one command; false if it is already done.
    fn start(&mut self, line: &str) -> bool {
        let (cmd, rest) = next_word(line);
        let (key, rest) = next_word(rest);
        let value = rest.trim();
        if cmd.is_empty() {
            return false;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        let k = key.to_string();
        let started = match (cmd, key.is_empty(), value.is_empty()) {
            ("PUT", false, false) => {
                let rec = kad::Record::new(kad::RecordKey::new(&key), value.as_bytes().to_vec());
                kad.put_record(rec, kad::Quorum::One)
                    .map(|id| (id, Cmd::Put(k.clone())))
                    .map_err(|e| format!("Failed to put record \"{k}\": {e}"))
            }
            ("GET", false, true) => Ok((kad.get_record(kad::RecordKey::new(&key)), Cmd::Get(k))),
            ("PUT_PROVIDER", false, true) => kad
                .start_providing(provider_key(key))
                .map(|id| (id, Cmd::Provide(k.clone())))
                .map_err(|e| format!("Failed to put provider record \"{k}\": {e}")),
            ("GET_PROVIDERS", false, true) => Ok((
                kad.get_providers(provider_key(key)),
                Cmd::Providers(k, HashSet::new()),
            )),
            ("FIND_PEER", false, true) => match key.parse::<PeerId>() {
                Ok(p) => Ok((kad.get_closest_peers(p), Cmd::FindPeer(k, p))),
                Err(_) => Err(format!("Failed to find peer {k}: not a peer id")),
            },
            _ => Err(USAGE.to_string()),
        };
        match started {
            Ok(c) => {
                self.current = Some(c);
                true
            }
            Err(line) => {
                say!("{line}");
                false
            }
        }
    }

    /// A step of the query in flight; true when the command is done.
    fn progressed(&mut self, result: QueryResult, last: bool) -> bool {
        let Some((id, cmd)) = self.current.as_mut() else {
            return false;
        };
        let id = *id;
        let done = match (cmd, result) {
            (Cmd::Put(k), QueryResult::PutRecord(r)) => {
                match r {
                    Ok(_) => say!("Successfully put record \"{k}\""),
                    Err(e) => say!("Failed to put record \"{k}\": {e}"),
                }
                true
            }
            (Cmd::Get(k), QueryResult::GetRecord(r)) => match r {
                Ok(GetRecordOk::FoundRecord(rec)) => {
                    say!(
                        "Got record \"{k}\" \"{}\"",
                        String::from_utf8_lossy(&rec.record.value)
                    );
                    // The first value is the answer: the query need not go on.
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                    true
                }
                Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                    say!("Failed to get record \"{k}\": not found");
                    true
                }
                Err(e) => {
                    say!("Failed to get record \"{k}\": {e}");
                    true
                }
            },
            (Cmd::Provide(k), QueryResult::StartProviding(r)) => {
                match r {
                    Ok(_) => say!("Successfully put provider record \"{k}\""),
                    Err(e) => say!("Failed to put provider record \"{k}\": {e}"),
                }
                true
            }
            (Cmd::Providers(k, seen), QueryResult::GetProviders(r)) => {
                let failed = match r {
                    Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                        for p in providers {
                            if seen.insert(p) {
                                say!("Peer {p} provides key \"{k}\"");
                            }
                        }
                        None
                    }
                    Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => None,
                    Err(e) => Some(e.to_string()),
                };
                let done = last || failed.is_some();
                if done && seen.is_empty() {
                    match failed {
                        Some(e) => say!("Failed to get providers for key \"{k}\": {e}"),
                        None => say!("No providers found for key \"{k}\""),
                    }
                }
                done
            }
            (Cmd::FindPeer(k, target), QueryResult::GetClosestPeers(r)) => {
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                match peers.into_iter().find(|p| p.peer_id == *target) {
                    None => say!("Failed to find peer {k}: not found"),
                    Some(info) => {
                        // Addresses the query learnt, else the routing table's.
                        let known = if info.addrs.is_empty() {
                            self.addrs.get(target).cloned().unwrap_or_default()
                        } else {
                            info.addrs
                        };
                        // Printed as the others print them: without the /p2p/<id>
                        // the swarm appends to the addresses it dialed.
                        let mut addrs: Vec<Multiaddr> = Vec::new();
                        for mut a in known {
                            if let Some(Protocol::P2p(_)) = a.iter().last() {
                                a.pop();
                            }
                            if !addrs.contains(&a) {
                                addrs.push(a);
                            }
                        }
                        if addrs.is_empty() {
                            say!("Found peer {k} without addresses");
                        }
                        for a in addrs {
                            say!("Peer {k} has address {a}");
                        }
                    }
                }
                true
            }
            _ => false,
        };
        if done {
            self.current = None;
        }
        done
    }
}

/// "peer dht ARGS": the exit code.
pub async fn main(args: Vec<String>) -> i32 {
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let mut swarm = match build(&o) {
        Ok(s) => s,
        Err(e) => {
            say!("error {e}");
            return 1;
        }
    };
    let id = *swarm.local_peer_id();
    say!("Local peer id: {id}");
    let listen: Multiaddr = match o.listen.parse() {
        Ok(m) => m,
        Err(e) => return usage(format!("listen {}: {e}", o.listen)),
    };
    if let Err(e) = swarm.listen_on(listen) {
        say!("error listen {}: {e}", o.listen);
        return 1;
    }
    loop {
        match swarm.next().await {
            Some(SwarmEvent::NewListenAddr { address, .. }) => {
                say!("Listening on {address}/p2p/{id}");
                break;
            }
            Some(SwarmEvent::ListenerError { error, .. }) => {
                say!("error listen {}: {error}", o.listen);
                return 1;
            }
            Some(_) => {}
            None => return 1,
        }
    }
    for (p, a) in &o.bootstrap {
        swarm.behaviour_mut().kad.add_address(p, a.clone());
    }
    // The bootstrap query dials the bootstrap peers; commands wait for it
    // (10 s at most).
    let mut boot = if o.bootstrap.is_empty() {
        None
    } else {
        swarm.behaviour_mut().kad.bootstrap().ok()
    };
    let boot_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(boot_deadline);

    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            say!("error {e}");
            return 1;
        }
    };
    let mut n = Node {
        swarm,
        addrs: HashMap::new(),
        current: None,
    };
    let mut eof = false;
    loop {
        if eof && n.current.is_none() && !o.serve {
            return 0;
        }
        tokio::select! {
            ev = n.swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                    if info.protocols.contains(&KAD) {
                        for a in info.listen_addrs {
                            n.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                        }
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, addresses, .. })) => {
                    n.addrs.insert(peer, addresses.into_vec());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id: qid, result, step, .. })) => {
                    if Some(qid) == boot {
                        if let QueryResult::Bootstrap(r) = &result {
                            if r.as_ref().map(|ok| ok.num_remaining == 0).unwrap_or(true) || step.last {
                                let size: usize = n.swarm.behaviour_mut().kad.kbuckets().map(|b| b.num_entries()).sum();
                                eprintln!("peer dht: bootstrap done, {size} peers in the routing table");
                                boot = None;
                            }
                        }
                    } else if n.current.as_ref().map(|c| c.0) == Some(qid) {
                        n.progressed(result, step.last);
                    }
                }
                _ => {}
            },
            line = lines.recv(), if boot.is_none() && n.current.is_none() && !eof => match line {
                Some(l) => { n.start(&l); }
                None => eof = true,
            },
            _ = &mut boot_deadline, if boot.is_some() => {
                eprintln!("peer dht: bootstrap still under way after 10 s; going on");
                boot = None;
            }
            _ = tokio::signal::ctrl_c() => return 0,
            _ = term.recv() => return 0,
        }
    }
}
