//! A rust-libp2p peer for the cp2p interop scenarios, the twin of ../go/main.go:
//! tcp + noise|tls + yamux, ping, identify and an /echo/1.0.0 protocol on raw
//! streams (libp2p-stream opens ours, a handler of its own answers). One
//! machine-readable line per fact on stdout, the same lines as the go peer:
//! "peer-id <id>", "listening <ma>", "connected <id> transport=tcp
//! security=<id> muxer=<id> early-muxer=false", "ping rtt=<ms> ms",
//! "identified <id> agent=... protocols=... addrs=... record=<seq>|none",
//! "observed <id> addr=<ma> local=<ma>|none protocol-version=<v>",
//! "echo ok streams=N bytes=B ms=T", "error ...".
//! Exit 0 when the requested work succeeded, 1 with an "error ..." line
//! otherwise, 2 on a usage error.
//!
//! Usage:
//!
//!     peer [--listen MA] [--dial MA] [--security noise|tls] [--muxer yamux]
//!          [--ping N] [--echo-streams N --echo-size BYTES] [--wait-identify]
//!          [--agent NAME]
//!     peer mdns ...   (rust-libp2p's mDNS discovery: mdns.rs)
//!     peer rendezvous server|client ...   (rust-libp2p's rendezvous: rendezvous.rs)
//!
//! What rust-libp2p 0.57 does not tell, and how the lines say it:
//! - it reports no negotiated security or muxer per connection; one of each is
//!   offered, so a connection that came up runs on exactly those, and the
//!   "connected" line names them. It negotiates the muxer with
//!   multistream-select after the handshake only (no noise extension, no TLS
//!   ALPN muxer), hence early-muxer=false.
//! - no local address of a dialed connection: local=none on the dialer side.
//! - mplex is gone from rust-libp2p: --muxer mplex is refused.
//! - identify's signed peer record (libp2p-identify 0.48) is signed in a
//!   legacy envelope format go, js and cp2p do not accept, and an incoming
//!   standard record is dropped by it: this peer sends none (identify::Config::new),
//!   and prints record=none for what it receives.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, tls, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

mod autonat; // peer autonat ...
mod dht; // peer dht ...
mod mdns; // peer mdns ...
mod pubsub; // peer pubsub ...
mod ready; // peer ready ...
mod rendezvous; // peer rendezvous ...

const ECHO: StreamProtocol = StreamProtocol::new("/echo/1.0.0");
const CHUNK: usize = 64 * 1024;

struct Options {
    listen: String,
    dial: String,
    security: String,
    muxer: String,
    agent: String,
    ping: usize,
    echo_streams: usize,
    echo_size: usize,
    wait_identify: bool,
}

/// say prints one line whole, even from several tasks.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

fn usage(msg: String) -> ! {
    say!("error usage {}", msg);
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut o = Options {
        listen: String::new(),
        dial: String::new(),
        security: "noise".into(),
        muxer: "yamux".into(),
        agent: "rust-interop".into(),
        ping: 0,
        echo_streams: 0,
        echo_size: 1024 * 1024,
        wait_identify: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            usage(format!("unexpected argument {arg}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "wait-identify" {
            o.wait_identify = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => usage(format!("invalid boolean value {v:?} for -wait-identify")),
            };
            continue;
        }
        if ![
            "listen",
            "dial",
            "security",
            "muxer",
            "agent",
            "ping",
            "echo-streams",
            "echo-size",
        ]
        .contains(&name.as_str())
        {
            usage(format!("flag provided but not defined: -{name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .unwrap_or_else(|| usage(format!("flag needs an argument: -{name}"))),
        };
        let number = |v: &str| -> usize {
            v.parse()
                .unwrap_or_else(|_| usage(format!("invalid value {v:?} for flag -{name}")))
        };
        match name.as_str() {
            "listen" => o.listen = value,
            "dial" => o.dial = value,
            "security" => o.security = value,
            "muxer" => o.muxer = value,
            "agent" => o.agent = value,
            "ping" => o.ping = number(&value),
            "echo-streams" => o.echo_streams = number(&value),
            "echo-size" => o.echo_size = number(&value),
            _ => usage(format!("flag provided but not defined: -{name}")),
        }
    }
    o
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
    echo: echo_server::Behaviour,
}

/// The /echo/1.0.0 responder. libp2p-stream (which opens our own echo
/// streams) hands inbound streams over through a channel of one slot and
/// resets those that find it full: a burst of 100 concurrent streams loses
/// most of them. This connection handler takes each negotiated inbound stream
/// itself and spawns its echo at once.
mod echo_server {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use libp2p::core::transport::PortUse;
    use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
    use libp2p::core::Endpoint;
    use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
    use libp2p::swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    };
    use libp2p::{Multiaddr, PeerId};

    pub struct Behaviour;
    pub struct Handler;

    impl NetworkBehaviour for Behaviour {
        type ConnectionHandler = Handler;
        type ToSwarm = Infallible;

        fn handle_established_inbound_connection(
            &mut self,
            _: ConnectionId,
            _: PeerId,
            _: &Multiaddr,
            _: &Multiaddr,
        ) -> Result<THandler<Self>, ConnectionDenied> {
            Ok(Handler)
        }

        fn handle_established_outbound_connection(
            &mut self,
            _: ConnectionId,
            _: PeerId,
            _: &Multiaddr,
            _: Endpoint,
            _: PortUse,
        ) -> Result<THandler<Self>, ConnectionDenied> {
            Ok(Handler)
        }

        fn on_swarm_event(&mut self, _: FromSwarm) {}

        fn on_connection_handler_event(
            &mut self,
            _: PeerId,
            _: ConnectionId,
            event: THandlerOutEvent<Self>,
        ) {
            match event {}
        }

        fn poll(
            &mut self,
            _: &mut Context<'_>,
        ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
            Poll::Pending
        }
    }

    impl ConnectionHandler for Handler {
        type FromBehaviour = Infallible;
        type ToBehaviour = Infallible;
        type InboundProtocol = ReadyUpgrade<libp2p::StreamProtocol>;
        type OutboundProtocol = DeniedUpgrade;
        type InboundOpenInfo = ();
        type OutboundOpenInfo = ();

        fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
            SubstreamProtocol::new(ReadyUpgrade::new(super::ECHO), ())
        }

        fn poll(
            &mut self,
            _: &mut Context<'_>,
        ) -> Poll<
            ConnectionHandlerEvent<
                Self::OutboundProtocol,
                Self::OutboundOpenInfo,
                Self::ToBehaviour,
            >,
        > {
            Poll::Pending
        }

        fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
            match event {}
        }

        fn on_connection_event(
            &mut self,
            event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
        ) {
            if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) = event
            {
                tokio::spawn(super::echo_handler(stream));
            }
        }
    }
}

fn behaviour(key: &libp2p::identity::Keypair, o: &Options) -> Behaviour {
    let interval = if o.ping > 0 {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(15)
    };
    Behaviour {
        ping: ping::Behaviour::new(ping::Config::new().with_interval(interval)),
        identify: identify::Behaviour::new(
            identify::Config::new("ipfs/0.1.0".into(), key.public())
                .with_agent_version(o.agent.clone()),
        ),
        stream: libp2p_stream::Behaviour::new(),
        echo: echo_server::Behaviour,
    }
}

async fn build(o: &Options) -> Result<Swarm<Behaviour>, String> {
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let tcp = || tcp::Config::default().nodelay(true);
    let b = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    match o.security.as_str() {
        "noise" => Ok(b
            .with_tcp(tcp(), noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_dns()
            .map_err(|e| e.to_string())?
            .with_websocket(noise::Config::new, yamux::Config::default)
            .await
            .map_err(|e| e.to_string())?
            .with_behaviour(|k| behaviour(k, o))
            .map_err(|e| e.to_string())?
            .with_swarm_config(idle)
            .build()),
        "tls" => Ok(b
            .with_tcp(tcp(), tls::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_dns()
            .map_err(|e| e.to_string())?
            .with_websocket(tls::Config::new, yamux::Config::default)
            .await
            .map_err(|e| e.to_string())?
            .with_behaviour(|k| behaviour(k, o))
            .map_err(|e| e.to_string())?
            .with_swarm_config(idle)
            .build()),
        s => Err(format!("security {s}: noise or tls expected")),
    }
}

/// What the swarm task tells the work in main.
enum Ev {
    Connected(PeerId),
    DialFailed(String),
    Ping(PeerId, Result<Duration, String>),
    Identified(PeerId),
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// drive runs the swarm, prints its facts and forwards those main waits for.
async fn drive(mut swarm: Swarm<Behaviour>, sec_id: &'static str, tx: mpsc::UnboundedSender<Ev>) {
    let mut local: HashMap<ConnectionId, Multiaddr> = HashMap::new();
    let id = *swarm.local_peer_id();
    while let Some(ev) = swarm.next().await {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => say!("listening {address}/p2p/{id}"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let ConnectedPoint::Listener { local_addr, .. } = &endpoint {
                    local.insert(connection_id, local_addr.clone());
                }
                say!("connected {peer_id} transport=tcp security={sec_id} muxer=/yamux/1.0.0 early-muxer=false");
                let _ = tx.send(Ev::Connected(peer_id));
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                local.remove(&connection_id);
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                let _ = tx.send(Ev::DialFailed(error.to_string()));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                let _ = tx.send(Ev::Ping(peer, result.map_err(|e| e.to_string())));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                info,
            })) => {
                let record = match &info.signed_peer_record {
                    Some(env) => {
                        match libp2p::core::PeerRecord::from_signed_envelope_interop(env.clone())
                            .or_else(|_| {
                                libp2p::core::PeerRecord::from_signed_envelope(env.clone())
                            }) {
                            Ok(r) => r.seq().to_string(),
                            Err(_) => "none".into(),
                        }
                    }
                    None => "none".into(),
                };
                say!(
                    "identified {peer_id} agent={} protocols={} addrs={} record={record}",
                    info.agent_version,
                    join(&info.protocols),
                    join(&info.listen_addrs)
                );
                let loc = local
                    .get(&connection_id)
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "none".into());
                say!(
                    "observed {peer_id} addr={} local={loc} protocol-version={}",
                    info.observed_addr,
                    info.protocol_version
                );
                let _ = tx.send(Ev::Identified(peer_id));
            }
            _ => {}
        }
    }
}

/// echo_handler sends back every byte until EOF, then closes the stream.
async fn echo_handler(s: libp2p::Stream) {
    let (mut r, mut w) = s.split();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = w.close().await;
}

fn pattern(index: usize, offset: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| (index * 31 + offset + i) as u8).collect()
}

/// echo_once sends size bytes on one echo stream while reading them back, and
/// checks that all of them came back intact.
async fn echo_once(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    index: usize,
    size: usize,
) -> Result<(), String> {
    let s = control
        .open_stream(peer, ECHO)
        .await
        .map_err(|e| format!("echo stream {index}: {e}"))?;
    let (mut r, mut w) = s.split();
    let writer = async move {
        let mut sent = Sha256::new();
        let mut off = 0;
        while off < size {
            let b = pattern(index, off, CHUNK.min(size - off));
            sent.update(&b);
            w.write_all(&b).await?;
            off += b.len();
        }
        w.close().await?;
        Ok::<_, std::io::Error>(sent.finalize())
    };
    let reader = async move {
        let mut got = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut received = 0usize;
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.update(&buf[..n]);
            received += n;
        }
        Ok::<_, std::io::Error>((received, got.finalize()))
    };
    let (sent, got) = futures::join!(writer, reader);
    let sent = sent.map_err(|e| format!("echo stream {index}: write: {e}"))?;
    let (received, got) = got.map_err(|e| format!("echo stream {index}: read: {e}"))?;
    if received != size || sent != got {
        return Err(format!(
            "echo stream {index}: {received} of {size} bytes came back intact"
        ));
    }
    Ok(())
}

async fn run(o: Options) -> Result<(), String> {
    if o.muxer != "yamux" {
        return Err(format!(
            "muxer {}: rust-libp2p has no mplex any more, only yamux",
            o.muxer
        ));
    }
    let sec_id = match o.security.as_str() {
        "noise" => "/noise",
        "tls" => "/tls/1.0.0",
        s => return Err(format!("security {s}: noise or tls expected")),
    };
    let mut swarm = build(&o).await?;
    let id = *swarm.local_peer_id();
    let control = swarm.behaviour().stream.new_control();
    say!("peer-id {id}");
    if !o.listen.is_empty() {
        let ma: Multiaddr = o
            .listen
            .parse()
            .map_err(|e| format!("listen {}: {e}", o.listen))?;
        swarm
            .listen_on(ma)
            .map_err(|e| format!("listen {}: {e}", o.listen))?;
        // The listening line before anything else happens, as go prints it.
        loop {
            match swarm.next().await {
                Some(SwarmEvent::NewListenAddr { address, .. }) => {
                    say!("listening {address}/p2p/{id}");
                    break;
                }
                Some(SwarmEvent::ListenerError { error, .. }) => {
                    return Err(format!("listen {}: {error}", o.listen))
                }
                Some(SwarmEvent::ListenerClosed { reason: Err(e), .. }) => {
                    return Err(format!("listen {}: {e}", o.listen))
                }
                Some(_) => {}
                None => return Err("the swarm stopped".into()),
            }
        }
    }
    let target = if o.dial.is_empty() {
        None
    } else {
        let ma: Multiaddr = o
            .dial
            .parse()
            .map_err(|e| format!("dial {}: {e}", o.dial))?;
        match ma.iter().last() {
            Some(Protocol::P2p(p)) => Some((ma, p)),
            _ => return Err(format!("dial {}: no /p2p/ peer id at the end", o.dial)),
        }
    };
    if let Some((ma, _)) = &target {
        swarm
            .dial(ma.clone())
            .map_err(|e| format!("dial {}: {e}", o.dial))?;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(swarm, sec_id, tx));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let Some((_, peer)) = target else {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return Ok(());
    };
    let work = async move {
        let mut identified = false;
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(Ev::Connected(p)) if p == peer => break,
                    Some(Ev::DialFailed(e)) => return Err(format!("dial {}: {e}", o.dial)),
                    Some(Ev::Identified(p)) if p == peer => identified = true,
                    Some(_) => {}
                    None => return Err("the swarm stopped".into()),
                },
                _ = &mut deadline => return Err(format!("dial {}: no connection within 10 s", o.dial)),
            }
        }
        if o.ping > 0 {
            let deadline = tokio::time::sleep(Duration::from_secs(o.ping as u64 * 5 + 10));
            tokio::pin!(deadline);
            let mut n = 0;
            while n < o.ping {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(Ev::Ping(p, Ok(rtt))) if p == peer => {
                            say!("ping rtt={:.3} ms", rtt.as_micros() as f64 / 1000.0);
                            n += 1;
                        }
                        Some(Ev::Ping(p, Err(e))) if p == peer => return Err(format!("ping: {e}")),
                        Some(Ev::Identified(p)) if p == peer => identified = true,
                        Some(_) => {}
                        None => return Err("ping: the results stopped".into()),
                    },
                    _ = &mut deadline => return Err("ping: the results stopped".into()),
                }
            }
        }
        if o.echo_streams > 0 {
            let t0 = Instant::now();
            let tasks: Vec<_> = (0..o.echo_streams)
                .map(|i| tokio::spawn(echo_once(control.clone(), peer, i, o.echo_size)))
                .collect();
            let mut first = None;
            for t in tasks {
                let r = t.await.unwrap_or_else(|e| Err(e.to_string()));
                if let (Err(e), None) = (r, &first) {
                    first = Some(e);
                }
            }
            if let Some(e) = first {
                return Err(e);
            }
            say!(
                "echo ok streams={} bytes={} ms={}",
                o.echo_streams,
                o.echo_size,
                t0.elapsed().as_millis()
            );
        }
        if o.wait_identify && !identified {
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(Ev::Identified(p)) if p == peer => break,
                        Some(_) => {}
                        None => return Err("no identify: the swarm stopped".into()),
                    },
                    _ = &mut deadline => return Err("no identify within 10 s".into()),
                }
            }
        }
        Ok(())
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str);
    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
    match mode {
        Some("dht") => std::process::exit(dht::main(rest).await), // dht.rs
        Some("mdns") => std::process::exit(mdns::main(&rest).await), // mdns.rs
        Some("pubsub") => std::process::exit(pubsub::main(rest).await), // pubsub.rs
        Some("ready") => std::process::exit(ready::main(rest).await), // ready.rs
        Some("rendezvous") => std::process::exit(rendezvous::main(&rest).await), // rendezvous.rs
        Some("autonat") => std::process::exit(autonat::main(rest).await), // autonat.rs
        _ => {}
    }
    let code = match run(parse_args()).await {
        Ok(()) => 0,
        Err(e) => {
            say!("error {e}");
            1
        }
    };
    std::process::exit(code);
}
