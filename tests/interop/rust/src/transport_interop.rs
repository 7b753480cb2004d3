//! transport-interop: the rust-libp2p side of the libp2p transport-interop
//! contract, as cp2p's app (tests/interop/transport/cp2p_transport_interop.c,
//! whose opening comment sets the contract out) implements it: configured by
//! the environment, old names (transport, security, muxer, is_dialer, ip,
//! redis_addr, test_timeout_seconds) or unified-testing ones (TRANSPORT,
//! SECURE_CHANNEL, MUXER, IS_DIALER, LISTENER_IP, REDIS_ADDR,
//! TEST_TIMEOUT_SECS, TEST_KEY, DEBUG), the unified name first. TEST_KEY set:
//! Redis key <TEST_KEY>_listener_multiaddr and a YAML result; unset:
//! listenerAddr and the JSON line. The listener RPUSHes its address and serves
//! ping until SIGTERM/SIGINT (exit 0) or the timeout (exit 1); the dialer
//! BLPOPs it, dials, and takes the first ping (rust-libp2p's ping behaviour
//! pings as soon as a connection is up) for the result, printed on stdout,
//! the only thing there. Exit 2 for an environment it cannot run (tcp only,
//! and yamux only: mplex is gone from rust-libp2p 0.57), 1 for a failure.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, tls, yamux, Multiaddr, Swarm};

struct Config {
    security: String,
    is_dialer: bool,
    ip: String,
    redis_addr: String,
    test_key: Option<String>,
    key: String,
    timeout: Duration,
}

/// What ends the run: Config exits 2 (the environment asks for what this
/// peer cannot do), Fail exits 1.
enum Error {
    Config(String),
    Fail(String),
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Fail(format!("{what}: {e}"))
}

/// The first of names that is set and not empty, and the name it came from.
fn env_first(names: &[&'static str]) -> (Option<String>, &'static str) {
    for n in names {
        if let Ok(v) = std::env::var(n) {
            if !v.is_empty() {
                return (Some(v), n);
            }
        }
    }
    (None, names[0])
}

fn read_config() -> Result<Config, Error> {
    let bad = |s: String| Err(Error::Config(s));
    let (transport, name) = env_first(&["TRANSPORT", "transport"]);
    match transport.as_deref() {
        Some("tcp") => {}
        None => return bad("TRANSPORT (or transport) is not set".into()),
        Some(t) => return bad(format!("{name}={t}: this peer runs tcp only")),
    }
    let (security, name) = env_first(&["SECURE_CHANNEL", "security"]);
    let security = security.unwrap_or_default();
    if security != "noise" && security != "tls" {
        return bad(format!("{name}={security:?}: noise or tls expected"));
    }
    let (muxer, name) = env_first(&["MUXER", "muxer"]);
    let muxer = muxer.unwrap_or_default();
    if muxer != "yamux" {
        return bad(format!("{name}={muxer:?}: yamux expected (rust-libp2p has no mplex any more)"));
    }
    let (d, name) = env_first(&["IS_DIALER", "is_dialer"]);
    let is_dialer = match d.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => return bad(format!("{name}={:?}: true or false expected", d.unwrap_or_default())),
    };
    let ip = env_first(&["LISTENER_IP", "ip"]).0.unwrap_or_else(|| "0.0.0.0".into());
    let redis_addr = env_first(&["REDIS_ADDR", "redis_addr"]).0.unwrap_or_else(|| "redis:6379".into());
    let (t, name) = env_first(&["TEST_TIMEOUT_SECS", "test_timeout_seconds", "test_timeout_secs"]);
    let timeout = match t {
        None => Duration::from_secs(180),
        Some(t) => match t.parse::<u64>() {
            Ok(s) if s >= 1 => Duration::from_secs(s),
            _ => return bad(format!("{name}={t}: a number of seconds expected")),
        },
    };
    let test_key = env_first(&["TEST_KEY", "test_key"]).0;
    let key = match &test_key {
        Some(k) => format!("{k}_listener_multiaddr"),
        None => "listenerAddr".into(),
    };
    Ok(Config { security, is_dialer, ip, redis_addr, test_key, key, timeout })
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

fn build(c: &Config) -> Result<Swarm<Behaviour>, Error> {
    let behaviour = |k: &libp2p::identity::Keypair| Behaviour {
        ping: ping::Behaviour::new(ping::Config::new()),
        identify: identify::Behaviour::new(identify::Config::new("ipfs/0.1.0".into(), k.public())),
    };
    let idle = |s: libp2p::swarm::Config| s.with_idle_connection_timeout(Duration::from_secs(60));
    let tcp = || tcp::Config::default().nodelay(true);
    let b = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    Ok(if c.security == "noise" {
        b.with_tcp(tcp(), noise::Config::new, yamux::Config::default)
            .map_err(fail("noise"))?
            .with_behaviour(behaviour)
            .map_err(fail("behaviour"))?
            .with_swarm_config(idle)
            .build()
    } else {
        b.with_tcp(tcp(), tls::Config::new, yamux::Config::default)
            .map_err(fail("tls"))?
            .with_behaviour(behaviour)
            .map_err(fail("behaviour"))?
            .with_swarm_config(idle)
            .build()
    })
}

async fn redis_conn(c: &Config, deadline: Instant) -> Result<redis::aio::MultiplexedConnection, Error> {
    let client = redis::Client::open(format!("redis://{}", c.redis_addr)).map_err(fail("Redis address"))?;
    // No response timeout of the client's own: BLPOP waits as long as the test may.
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    loop {
        // The Redis container may come up after ours.
        match client.get_multiplexed_async_connection_with_config(&cfg).await {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() + Duration::from_millis(200) >= deadline => {
                return Err(Error::Fail(format!("Redis at {} unreachable: {e}", c.redis_addr)))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn is_loopback(a: &Multiaddr) -> bool {
    match a.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

async fn listen(c: &Config, deadline: Instant) -> Result<(), Error> {
    let mut swarm = build(c)?;
    let proto = if c.ip.contains(':') { "ip6" } else { "ip4" };
    let ma: Multiaddr = format!("/{proto}/{}/tcp/0", c.ip).parse().map_err(fail("listen IP"))?;
    let unspecified = c.ip == "0.0.0.0" || c.ip == "::";
    swarm.listen_on(ma).map_err(fail("listen"))?;
    let sleep = tokio::time::sleep_until(deadline.into());
    tokio::pin!(sleep);
    // On 0.0.0.0 the listener reports each interface's address: publish a
    // container's own, not loopback, which its peer could not reach.
    let addr = loop {
        tokio::select! {
            ev = swarm.select_next_some() => {
                if let SwarmEvent::NewListenAddr { address, .. } = ev {
                    if !(unspecified && is_loopback(&address)) {
                        break format!("{address}/p2p/{}", swarm.local_peer_id());
                    }
                }
            }
            _ = &mut sleep => return Err(Error::Fail("listener: no listen address".into())),
        }
    };
    eprintln!("rust transport-interop: listening on {addr}; RPUSH {}", c.key);
    let mut conn = redis_conn(c, deadline).await?;
    redis::cmd("RPUSH")
        .arg(&c.key)
        .arg(&addr)
        .query_async::<i64>(&mut conn)
        .await
        .map_err(fail("RPUSH"))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(fail("signal"))?;
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = term.recv() => return Ok(()), // the runner is done with us
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = &mut sleep => return Err(Error::Fail(format!("listener: timed out after {:?}", c.timeout))),
        }
    }
}

async fn dial(c: &Config, deadline: Instant) -> Result<(), Error> {
    let mut swarm = build(c)?;
    let mut conn = redis_conn(c, deadline).await?;
    let wait = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
    let got: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(&c.key)
        .arg(wait)
        .query_async(&mut conn)
        .await
        .map_err(fail("BLPOP"))?;
    let Some((_, addr)) = got else {
        return Err(Error::Fail(format!("BLPOP {}: no listener address within {wait} s", c.key)));
    };
    let ma: Multiaddr = addr.parse().map_err(fail("the listener's address"))?;
    eprintln!("rust transport-interop: dialing {addr} ({}, yamux)", c.security);
    let t0 = Instant::now();
    swarm.dial(ma).map_err(fail("dial"))?;
    let sleep = tokio::time::sleep_until(deadline.into());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { result, .. })) => {
                    let rtt = result.map_err(fail("ping"))?;
                    let total = t0.elapsed().as_micros() as f64 / 1000.0;
                    let rtt = rtt.as_micros() as f64 / 1000.0;
                    if c.test_key.is_some() {
                        println!("latency:\n  handshake_plus_one_rtt: {total:.3}\n  ping_rtt: {rtt:.3}\n  unit: ms");
                    } else {
                        println!("{{\"handshakePlusOneRTTMillis\": {total:.3}, \"pingRTTMilllis\": {rtt:.3}}}");
                    }
                    return Ok(());
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(Error::Fail(format!("dial: {error}")));
                }
                _ => {}
            },
            _ = &mut sleep => return Err(Error::Fail(format!("dialer: timed out after {:?}", c.timeout))),
        }
    }
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let r = match read_config() {
        Ok(c) => {
            let deadline = start + c.timeout;
            if c.is_dialer {
                dial(&c, deadline).await
            } else {
                listen(&c, deadline).await
            }
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => std::process::exit(0),
        Err(Error::Config(s)) => {
            eprintln!("rust transport-interop: {s}");
            std::process::exit(2)
        }
        Err(Error::Fail(s)) => {
            eprintln!("rust transport-interop: {s}");
            std::process::exit(1)
        }
    }
}
