//! demo: the original demo's three rust-libp2p apps, written anew for the
//! cluster scenarios (tests/cluster/run), with cp2p's options and cp2p's
//! output lines, so that a check reads a rust pod's log as it reads a cp2p
//! pod's:
//!
//!     demo ping [--listen MA]... [--dial MA | MA] [--count N] [--interval S]
//!               [--timeout S] [--key FILE]
//!     demo mdns [--listen MA]... [--interval S] [--ttl S] [--dial] [--key FILE]
//!     demo dht  [--listen MA]... [--bootstrap MA]... [--serve] [--key FILE]
//!               [--query-timeout S]
//!
//! Every mode prints "Local peer id: <id>" and "Listening on <ma>/p2p/<id>".
//! - ping serves /ipfs/ping/1.0.0 and keeps its connections open (the demo's
//!   keep-alive); with --dial it pings that peer and prints
//!   "ping <peer id> rtt=<ms> ms" (rust-libp2p also pings whoever connects,
//!   and those lines are printed too). --count N: exit 0 after N replies.
//! - mdns prints "discovered <peer id> <multiaddr>" and
//!   "expired <peer id> <multiaddr>"; --dial connects to what it finds
//!   ("connected <peer id>"). Defaults as cp2p's: a query every 10 s, records
//!   with a TTL of 120 s.
//! - dht runs Kademlia (/ipfs/kad/1.0.0, server mode, records in memory)
//!   and reads commands on stdin, one a line: PUT <key> <value>, GET <key>,
//!   PUT_PROVIDER <key>, GET_PROVIDERS <key>, FIND_PEER <peer id>, printing
//!   'Successfully put record "k"', 'Got record "k" "v"', 'Successfully put
//!   provider record "k"', 'Peer <id> provides key "k"', 'Peer <id> has
//!   address <ma>', or 'Failed to ...: <why>'. A provider key that parses as
//!   a CID stands for its multihash, as in cp2p. A --bootstrap address
//!   without /p2p/<id> (a DNS name, as a StatefulSet knows its peers) is
//!   dialled to learn the peer ID the handshake proves; bootstrap peers are
//!   tried again (after 1 s, doubling to 60 s) while the routing table is
//!   empty, and a command waits for them (--query-timeout, 60 s). It exits at
//!   the end of stdin unless --serve is given.
//!
//! --key FILE: the identity, a libp2p protobuf private key (cp2p keygen's
//! format); made (Ed25519) if the file does not exist, so that a pod keeps
//! its peer ID on its volume. SIGINT and SIGTERM end every mode with 0.
//! Errors go to stderr as "demo: <mode>: ..."; exit 1 for a runtime
//! failure, 2 for a usage error.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::kad::{
    self, store::MemoryStore, GetProvidersOk, GetRecordOk, QueryId, QueryResult, Quorum, Record,
    RecordKey,
};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, mdns, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($arg)*);
        let _ = o.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    kad: Toggle<kad::Behaviour<MemoryStore>>,
}

#[derive(Default)]
struct Options {
    listen: Vec<String>,
    dial: Option<String>,
    bootstrap: Vec<String>,
    key: Option<String>,
    count: u64,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    ttl: Option<Duration>,
    query_timeout: Option<Duration>,
    dial_found: bool,
    serve: bool,
}

const USAGE: &str = "usage: demo ping [--listen MA]... [--dial MA | MA] [--count N] [--interval S] [--timeout S] [--key FILE]
       demo mdns [--listen MA]... [--interval S] [--ttl S] [--dial] [--key FILE]
       demo dht  [--listen MA]... [--bootstrap MA]... [--serve] [--query-timeout S] [--key FILE]
   then, for dht, commands on stdin: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> |
   GET_PROVIDERS <key> | FIND_PEER <peer id>";

/// One line on stderr, then the exit code.
fn fail(mode: &str, code: i32, msg: String) -> ! {
    eprintln!("demo: {mode}: {msg}");
    std::process::exit(code);
}

fn parse(mode: &str, args: &[String]) -> Options {
    let usage = |m: String| -> ! { fail(mode, 2, format!("{m}\n{USAGE}")) };
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let flag = match a.as_str() {
            "--dial" if mode == "mdns" => {
                o.dial_found = true;
                continue;
            }
            "--serve" if mode == "dht" => {
                o.serve = true;
                continue;
            }
            s if s.starts_with("--") => s,
            s if mode == "ping" && s.starts_with('/') && o.dial.is_none() => {
                o.dial = Some(s.to_string()); // the address alone, as rust-libp2p's ping example takes it
                continue;
            }
            s => usage(format!("unexpected argument {s}")),
        };
        let v = it
            .next()
            .unwrap_or_else(|| usage(format!("{flag} needs a value")));
        let secs = |v: &str, min: f64| -> Duration {
            match v.parse::<f64>() {
                Ok(s) if s >= min && s <= 86400.0 * 365.0 => Duration::from_secs_f64(s),
                _ => usage(format!("bad value {v} for {flag}")),
            }
        };
        match (mode, flag) {
            (_, "--listen") => o.listen.push(v.clone()),
            (_, "--key") => o.key = Some(v.clone()),
            ("ping", "--dial") => o.dial = Some(v.clone()),
            ("ping", "--count") => {
                o.count = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage(format!("bad value {v} for --count")))
            }
            ("ping", "--interval") => o.interval = Some(secs(v, 0.0)),
            ("mdns", "--interval") => o.interval = Some(secs(v, 0.001)),
            ("ping", "--timeout") => o.timeout = Some(secs(v, 0.001)),
            ("mdns", "--ttl") => o.ttl = Some(secs(v, 1.0)),
            ("dht", "--bootstrap") => o.bootstrap.push(v.clone()),
            ("dht", "--query-timeout") => o.query_timeout = Some(secs(v, 1.0)),
            _ => usage(format!("unknown option {flag}")),
        }
    }
    if mode == "ping" && o.listen.is_empty() && o.dial.is_none() {
        usage("give --listen, --dial or both".into());
    }
    if mode != "ping" && o.listen.is_empty() {
        o.listen.push("/ip4/0.0.0.0/tcp/0".into());
    }
    o
}

/// The identity in FILE, or a new Ed25519 one written there.
fn identity(mode: &str, path: &Option<String>) -> Keypair {
    let Some(path) = path else {
        return Keypair::generate_ed25519();
    };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .unwrap_or_else(|e| fail(mode, 1, format!("cannot read key {path}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().expect("an Ed25519 key encodes");
            let tmp = format!("{path}.new");
            let written = std::fs::File::create(&tmp)
                .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
                .and_then(|_| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                fail(mode, 1, format!("cannot write key {path}: {e}"));
            }
            eprintln!("demo: {mode}: no identity key at {path}: made one");
            key
        }
        Err(e) => fail(mode, 1, format!("cannot read key {path}: {e}")),
    }
}

fn build(mode: &str, key: Keypair, o: &Options) -> Swarm<Behaviour> {
    let interval = o
        .interval
        .unwrap_or(Duration::from_secs(if mode == "mdns" { 10 } else { 1 }));
    let ping_cfg = if mode == "ping" {
        ping::Config::new().with_interval(interval.max(Duration::from_millis(1)))
    } else {
        ping::Config::new()
    };
    let mdns_cfg = {
        let mut c = mdns::Config::default();
        c.query_interval = interval;
        c.ttl = o.ttl.unwrap_or(Duration::from_secs(120));
        c
    };
    let query_timeout = o.query_timeout.unwrap_or(Duration::from_secs(60));
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap_or_else(|e| fail(mode, 1, e.to_string()))
        .with_dns()
        .unwrap_or_else(|e| fail(mode, 1, e.to_string()))
        .with_behaviour(|k| {
            let id = k.public().to_peer_id();
            let kad = (mode == "dht").then(|| {
                let mut cfg = kad::Config::new(kad::PROTOCOL_NAME);
                cfg.set_query_timeout(query_timeout);
                let mut b = kad::Behaviour::with_config(id, MemoryStore::new(id), cfg);
                b.set_mode(Some(kad::Mode::Server));
                b
            });
            let mdns = if mode == "mdns" {
                Some(mdns::tokio::Behaviour::new(mdns_cfg, id)?)
            } else {
                None
            };
            Ok(Behaviour {
                ping: ping::Behaviour::new(ping_cfg),
                identify: identify::Behaviour::new(
                    identify::Config::new("ipfs/0.1.0".into(), k.public()).with_agent_version(
                        format!("cp2p-demo-rust/{}", env!("CARGO_PKG_VERSION")),
                    ),
                ),
                mdns: mdns.into(),
                kad: kad.into(),
            })
        })
        .unwrap_or_else(|e| fail(mode, 1, format!("cannot start: {e}")))
        // The demo's keep-alive: connections stay open while idle.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(86400 * 365)))
        .build()
}

fn listen(mode: &str, swarm: &mut Swarm<Behaviour>, o: &Options) {
    for l in &o.listen {
        let ma: Multiaddr = l
            .parse()
            .unwrap_or_else(|e| fail(mode, 1, format!("cannot listen on {l}: {e}")));
        if let Err(e) = swarm.listen_on(ma) {
            fail(mode, 1, format!("cannot listen on {l}: {e}"));
        }
    }
}

/// addr without a trailing /p2p/<id>, and that id.
fn split_p2p(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut a = addr.clone();
    match a.pop() {
        Some(Protocol::P2p(id)) => (a, Some(id)),
        Some(p) => {
            a.push(p);
            (a, None)
        }
        None => (a, None),
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Protocol::Ip6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

async fn signalled() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn print_listen(id: &PeerId, ev: &SwarmEvent<BehaviourEvent>) {
    if let SwarmEvent::NewListenAddr { address, .. } = ev {
        say!("Listening on {address}/p2p/{id}");
    }
}

// ---- ping ----

async fn run_ping(mut swarm: Swarm<Behaviour>, o: Options) -> i32 {
    let id = *swarm.local_peer_id();
    let mut target: Option<(ConnectionId, String)> = None;
    if let Some(d) = &o.dial {
        let ma: Multiaddr = d
            .parse()
            .unwrap_or_else(|e| fail("ping", 1, format!("cannot dial {d}: {e}")));
        let opts = match split_p2p(&ma).1 {
            Some(peer) => DialOpts::peer_id(peer).addresses(vec![ma.clone()]).build(),
            None => DialOpts::unknown_peer_id().address(ma.clone()).build(),
        };
        let cid = opts.connection_id();
        if let Err(e) = swarm.dial(opts) {
            fail("ping", 1, format!("cannot dial {d}: {e}"));
        }
        target = Some((cid, d.clone()));
    }
    let timeout = tokio::time::sleep(o.timeout.unwrap_or(Duration::from_secs(10)));
    tokio::pin!(timeout);
    let stop = signalled();
    tokio::pin!(stop);
    let mut remote: Option<PeerId> = None;
    let mut replies = 0u64;
    // As in cp2p, a closed connection fails at the next ping, not at once.
    let interval = o.interval.unwrap_or(Duration::from_secs(1));
    let next_ping = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next_ping);
    let mut closed: Option<PeerId> = None;
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = &mut stop => return 0,
            _ = &mut next_ping, if closed.is_some() => {
                fail("ping", 1, format!("ping {} failed: the connection closed", closed.unwrap()))
            }
            _ = &mut timeout, if target.is_some() && remote.is_none() => {
                fail("ping", 1, format!("cannot reach {}: timed out", target.unwrap().1))
            }
        };
        print_listen(&id, &ev);
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } if target.as_ref().is_some_and(|t| t.0 == connection_id) => remote = Some(peer_id),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } if target.as_ref().is_some_and(|t| t.0 == connection_id) => fail(
                "ping",
                1,
                format!("cannot reach {}: {error}", target.unwrap().1),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if remote == Some(peer_id) => {
                closed = Some(peer_id);
                next_ping
                    .as_mut()
                    .reset(tokio::time::Instant::now() + interval);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                match result {
                    Ok(rtt) => {
                        say!("ping {peer} rtt={:.2} ms", rtt.as_secs_f64() * 1000.0);
                        if remote == Some(peer) {
                            replies += 1;
                            if o.count > 0 && replies >= o.count {
                                return 0;
                            }
                        }
                    }
                    Err(e) if remote == Some(peer) => {
                        fail("ping", 1, format!("ping {peer} failed: {e}"))
                    }
                    Err(_) => {}
                }
            }
            _ => {}
        }
    }
}

// ---- mdns ----

async fn run_mdns(mut swarm: Swarm<Behaviour>, o: Options) -> i32 {
    let id = *swarm.local_peer_id();
    let stop = signalled();
    tokio::pin!(stop);
    let mut dialing: HashSet<PeerId> = HashSet::new();
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = &mut stop => return 0,
        };
        print_listen(&id, &ev);
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    say!("discovered {peer} {}", split_p2p(&addr).0);
                    if o.dial_found && dialing.insert(peer) {
                        let _ = swarm.dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(list))) => {
                for (peer, addr) in list {
                    say!("expired {peer} {}", split_p2p(&addr).0);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if o.dial_found && num_established.get() == 1 => {
                say!("connected {peer_id}")
            }
            _ => {}
        }
    }
}

// ---- dht ----

/// A bootstrap peer: its address (without /p2p) and, once known, its id.
struct Seed {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

enum Cmd {
    Put(String),
    Get(String),
    Provide(String),
    Providers(String, HashSet<PeerId>),
    FindPeer(String, PeerId),
}

/// The multihash of a CID (base32 "b...", base58btc "z..." or a CIDv0 "Qm..."),
/// as cp2p takes provider keys; None if s is no CID.
fn cid_multihash(s: &str) -> Option<Vec<u8>> {
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
    fn base58(s: &str) -> Option<Vec<u8>> {
        const ALPHA: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut n: Vec<u8> = Vec::new(); // little-endian base 256
        for c in s.bytes() {
            let mut carry = ALPHA.iter().position(|&a| a == c)? as u32;
            for d in n.iter_mut() {
                carry += *d as u32 * 58;
                *d = carry as u8;
                carry >>= 8;
            }
            while carry > 0 {
                n.push(carry as u8);
                carry >>= 8;
            }
        }
        let zeros = s.bytes().take_while(|&c| c == b'1').count();
        let mut out = vec![0u8; zeros];
        out.extend(n.iter().rev());
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
    // A multihash: <code> <length> <digest of that length>.
    fn multihash(b: &[u8]) -> Option<Vec<u8>> {
        let (_, rest) = varint(b)?;
        let (len, digest) = varint(rest)?;
        (digest.len() as u64 == len).then(|| b.to_vec())
    }
    if s.len() == 46 && s.starts_with("Qm") {
        return multihash(&base58(s)?);
    }
    let bytes = match s.as_bytes().first()? {
        b'b' => base32(&s[1..])?,
        b'z' => base58(&s[1..])?,
        _ => return None,
    };
    let (version, rest) = varint(&bytes)?;
    let (_codec, mh) = varint(rest)?;
    if version != 1 {
        return None;
    }
    multihash(mh)
}

fn provider_key(k: &str) -> RecordKey {
    RecordKey::new(&cid_multihash(k).unwrap_or_else(|| k.as_bytes().to_vec()))
}

struct Dht {
    swarm: Swarm<Behaviour>,
    seeds: Vec<Seed>,
    seed_dials: HashMap<ConnectionId, usize>,
    remote_addr: HashMap<ConnectionId, Multiaddr>,
    busy: Option<(QueryId, Cmd)>,
    waiting: Option<(String, tokio::time::Instant)>,
    query_timeout: Duration,
}

impl Dht {
    fn kad(&mut self) -> &mut kad::Behaviour<MemoryStore> {
        self.swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .expect("dht mode has kad")
    }

    fn table_size(&mut self) -> usize {
        self.kad().kbuckets().map(|b| b.num_entries()).sum()
    }

    /// Dial the seeds whose id is not known, add the others to the table again.
    fn try_seeds(&mut self) {
        for i in 0..self.seeds.len() {
            let addr = self.seeds[i].addr.clone();
            match self.seeds[i].peer {
                Some(peer) => {
                    self.kad().add_address(&peer, addr.clone());
                    let _ = self
                        .swarm
                        .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                }
                None => {
                    let opts = DialOpts::unknown_peer_id().address(addr).build();
                    self.seed_dials.insert(opts.connection_id(), i);
                    let _ = self.swarm.dial(opts);
                }
            }
        }
        let _ = self.kad().bootstrap();
    }

    /// Start one command line; false if nothing runs (done or not understood).
    fn start(&mut self, line: &str) -> bool {
        let line = line.trim();
        let mut words = line.splitn(2, char::is_whitespace);
        let cmd = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim_start();
        let mut kv = rest.splitn(2, char::is_whitespace);
        let key = kv.next().unwrap_or("").to_string();
        let value = kv.next().unwrap_or("").trim().to_string();
        if cmd.is_empty() {
            return false;
        }
        let one = !key.is_empty() && value.is_empty();
        if (cmd == "PUT" && (key.is_empty() || value.is_empty())) || (cmd != "PUT" && !one) {
            match cmd {
                "PUT" => say!("Expected: PUT <key> <value>"),
                _ => say!("Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | GET_PROVIDERS <key> | FIND_PEER <peer id>"),
            }
            return false;
        }
        let (id, c) = match cmd {
            "PUT" => {
                let r = Record::new(RecordKey::new(&key), value.into_bytes());
                match self.kad().put_record(r, Quorum::One) {
                    Ok(id) => (id, Cmd::Put(key)),
                    Err(e) => {
                        say!("Failed to put record \"{key}\": {e}");
                        return false;
                    }
                }
            }
            "GET" => (self.kad().get_record(RecordKey::new(&key)), Cmd::Get(key)),
            "PUT_PROVIDER" => match self.kad().start_providing(provider_key(&key)) {
                Ok(id) => (id, Cmd::Provide(key)),
                Err(e) => {
                    say!("Failed to put provider record \"{key}\": {e}");
                    return false;
                }
            },
            "GET_PROVIDERS" => (
                self.kad().get_providers(provider_key(&key)),
                Cmd::Providers(key, HashSet::new()),
            ),
            "FIND_PEER" => match key.parse::<PeerId>() {
                Ok(p) => (self.kad().get_closest_peers(p), Cmd::FindPeer(key, p)),
                Err(_) => {
                    say!("Failed to find peer {key}: not a peer id");
                    return false;
                }
            },
            _ => {
                say!("Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | GET_PROVIDERS <key> | FIND_PEER <peer id>");
                return false;
            }
        };
        self.busy = Some((id, c));
        true
    }

    /// A command line: run now, or once the table has a peer.
    fn submit(&mut self, line: String) {
        if line.trim().is_empty() {
            return;
        }
        if self.table_size() == 0 {
            self.waiting = Some((line, tokio::time::Instant::now() + self.query_timeout));
        } else {
            self.start(&line);
        }
    }

    /// The waiting command gives up: nobody to ask.
    fn give_up(&mut self) {
        if let Some((line, _)) = self.waiting.take() {
            let mut w = line.split_whitespace();
            let (cmd, key) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            let what = match cmd {
                "PUT" => format!("Failed to put record \"{key}\""),
                "GET" => format!("Failed to get record \"{key}\""),
                "PUT_PROVIDER" => format!("Failed to put provider record \"{key}\""),
                "GET_PROVIDERS" => format!("Failed to get providers for key \"{key}\""),
                "FIND_PEER" => format!("Failed to find peer {key}"),
                _ => {
                    self.start(&line); // prints what is expected
                    return;
                }
            };
            say!("{what}: no peer to ask: the routing table is empty (give --bootstrap MA)");
        }
    }

    /// A query's progress; clears busy when the command is done.
    fn progress(&mut self, id: QueryId, result: QueryResult, last: bool) {
        let Some((bid, cmd)) = self.busy.as_mut() else {
            return;
        };
        if *bid != id {
            return;
        }
        let done = match (cmd, result) {
            (Cmd::Put(k), QueryResult::PutRecord(r)) => {
                match r {
                    Ok(_) => say!("Successfully put record \"{k}\""),
                    Err(kad::PutRecordError::QuorumFailed { success, quorum, .. }) => say!(
                        "Failed to put record \"{k}\": too few peers for the quorum: {} of the {quorum} needed took it",
                        success.len()
                    ),
                    Err(e) => say!("Failed to put record \"{k}\": {}", reason(&e.to_string())),
                }
                true
            }
            (Cmd::Get(k), QueryResult::GetRecord(r)) => match r {
                Ok(GetRecordOk::FoundRecord(pr)) => {
                    say!(
                        "Got record \"{k}\" \"{}\"",
                        String::from_utf8_lossy(&pr.record.value)
                    );
                    if let Some(mut q) = self.kad().query_mut(&id) {
                        q.finish();
                    }
                    true
                }
                Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                    say!("Failed to get record \"{k}\": not found");
                    true
                }
                Err(kad::GetRecordError::NotFound { .. }) => {
                    say!("Failed to get record \"{k}\": not found");
                    true
                }
                Err(e) => {
                    say!("Failed to get record \"{k}\": {}", reason(&e.to_string()));
                    true
                }
            },
            (Cmd::Provide(k), QueryResult::StartProviding(r)) => {
                match r {
                    Ok(_) => say!("Successfully put provider record \"{k}\""),
                    Err(e) => say!(
                        "Failed to put provider record \"{k}\": {}",
                        reason(&e.to_string())
                    ),
                }
                true
            }
            (Cmd::Providers(k, seen), QueryResult::GetProviders(r)) => {
                match r {
                    Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                        for p in providers {
                            if seen.insert(p) {
                                say!("Peer {p} provides key \"{k}\"");
                            }
                        }
                    }
                    Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => {}
                    Err(e) if seen.is_empty() => {
                        say!(
                            "Failed to get providers for key \"{k}\": {}",
                            reason(&e.to_string())
                        )
                    }
                    Err(_) => {}
                }
                if last && seen.is_empty() {
                    say!("No providers found for key \"{k}\"");
                }
                last
            }
            (Cmd::FindPeer(k, p), QueryResult::GetClosestPeers(r)) => {
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let (k, p) = (k.clone(), *p);
                let found = peers.into_iter().find(|i| i.peer_id == p);
                // A lookup names a peer it met without its addresses: the
                // routing table has them.
                let mut addrs = found.as_ref().map(|i| i.addrs.clone()).unwrap_or_default();
                if addrs.is_empty() {
                    for b in self.kad().kbuckets() {
                        for e in b.iter() {
                            if *e.node.key.preimage() == p {
                                addrs.extend(e.node.value.iter().cloned());
                            }
                        }
                    }
                }
                if !addrs.is_empty() {
                    for a in addrs {
                        say!("Peer {k} has address {}", split_p2p(&a).0);
                    }
                } else if found.is_some() {
                    say!("Found peer {k} without addresses");
                } else {
                    say!("Failed to find peer {k}: not found");
                }
                true
            }
            _ => false,
        };
        if done {
            self.busy = None;
        }
    }
}

/// rust-libp2p's words for a failure, in cp2p's.
fn reason(e: &str) -> String {
    if e.contains("timed out") {
        "timed out".into()
    } else {
        e.into()
    }
}

async fn run_dht(swarm: Swarm<Behaviour>, o: Options) -> i32 {
    let mut d = Dht {
        swarm,
        seeds: Vec::new(),
        seed_dials: HashMap::new(),
        remote_addr: HashMap::new(),
        busy: None,
        waiting: None,
        query_timeout: o.query_timeout.unwrap_or(Duration::from_secs(60)),
    };
    let id = *d.swarm.local_peer_id();
    for b in &o.bootstrap {
        let ma: Multiaddr = b
            .parse()
            .unwrap_or_else(|e| fail("dht", 2, format!("bad bootstrap address {b}: {e}")));
        let (addr, peer) = split_p2p(&ma);
        if peer != Some(id) {
            d.seeds.push(Seed { addr, peer });
        }
    }
    if !d.seeds.is_empty() {
        d.try_seeds();
    }
    let mut backoff = Duration::from_secs(1);
    let retry = tokio::time::sleep(backoff);
    tokio::pin!(retry);
    // stdin on a thread of its own (a blocking read), its lines over a channel.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut eof = false;
    let stop = signalled();
    tokio::pin!(stop);
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    loop {
        if eof && d.busy.is_none() && d.waiting.is_none() && !o.serve {
            return 0;
        }
        let give_up_at = d.waiting.as_ref().map(|w| w.1).unwrap_or(far);
        let idle = d.busy.is_none() && d.waiting.is_none() && !eof;
        tokio::select! {
            _ = &mut stop => return 0,
            line = lines.recv(), if idle => match line {
                Some(l) => d.submit(l),
                None => eof = true,
            },
            _ = tokio::time::sleep_until(give_up_at), if d.waiting.is_some() => d.give_up(),
            _ = &mut retry, if !d.seeds.is_empty() => {
                if d.table_size() == 0 {
                    d.try_seeds();
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                } else {
                    backoff = Duration::from_secs(1);
                }
                retry.as_mut().reset(tokio::time::Instant::now() + backoff);
            }
            ev = d.swarm.select_next_some() => {
                print_listen(&id, &ev);
                match ev {
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                        let remote = endpoint.get_remote_address().clone();
                        if let ConnectedPoint::Dialer { .. } = endpoint {
                            if let Some(i) = d.seed_dials.remove(&connection_id) {
                                if d.seeds[i].peer.is_none() {
                                    eprintln!("demo: dht: bootstrap peer {}/p2p/{peer_id}", d.seeds[i].addr);
                                }
                                d.seeds[i].peer = Some(peer_id);
                                let addr = d.seeds[i].addr.clone();
                                d.kad().add_address(&peer_id, addr);
                                let _ = d.kad().bootstrap();
                            }
                        }
                        d.remote_addr.insert(connection_id, remote);
                    }
                    SwarmEvent::ConnectionClosed { connection_id, .. } => {
                        d.remote_addr.remove(&connection_id);
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, .. } => {
                        d.seed_dials.remove(&connection_id);
                    }
                    // What a peer says it listens on, if it serves the DHT:
                    // loopback addresses only from a peer on loopback.
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                        peer_id, connection_id, info,
                    })) if info.protocols.contains(&kad::PROTOCOL_NAME) => {
                        let local = d.remote_addr.get(&connection_id).is_some_and(is_loopback);
                        for a in info.listen_addrs {
                            if local || !is_loopback(&a) {
                                d.kad().add_address(&peer_id, a);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { .. })) => {
                        if let Some((line, _)) = d.waiting.take() {
                            d.start(&line);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                        id: qid, result, step, ..
                    })) => d.progress(qid, result, step.last),
                    _ => {}
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    if mode == "--help" || mode == "-h" {
        println!("{USAGE}");
        return;
    }
    if !["ping", "mdns", "dht"].contains(&mode) {
        fail(
            if mode.is_empty() { "usage" } else { mode },
            2,
            format!("ping, mdns or dht expected\n{USAGE}"),
        );
    }
    let o = parse(mode, &args[1..]);
    let key = identity(mode, &o.key);
    let mut swarm = build(mode, key, &o);
    say!("Local peer id: {}", swarm.local_peer_id());
    listen(mode, &mut swarm, &o);
    let code = match mode {
        "ping" => run_ping(swarm, o).await,
        "mdns" => run_mdns(swarm, o).await,
        _ => run_dht(swarm, o).await,
    };
    std::process::exit(code);
}
