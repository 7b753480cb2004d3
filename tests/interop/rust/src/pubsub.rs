//! `peer pubsub`: rust-libp2p's gossipsub in the cp2p interop tests, the
//! twin of ../../go/pubsub.go, printing the lines `cp2p pubsub` prints:
//! "Got message: '<text>' with id: <hex> from peer: <author>",
//! "subscribed <peer> <topic>", "unsubscribed <peer> <topic>", beside
//! "peer-id <id>" and "listening <ma>". Each stdin line is published to the
//! first topic ("PUBLISH <topic> <text>" to another).
//!
//!     peer pubsub --topic T [--topic T2] [--listen MA] [--dial MA]
//!
//! Messages are signed and validated strictly. The message id is from +
//! seqno as bytes, go-libp2p-pubsub's and cp2p's default (rust-libp2p's own
//! default writes them as text), so that the ids in IHAVE and IWANT mean the
//! same on every peer. rust-libp2p's gossipsub has no floodsub router.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr};
use tokio::sync::mpsc;

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// go-libp2p-pubsub's DefaultMsgIdFn: the author's peer id bytes, then the
/// seqno's 8 bytes.
fn message_id(m: &gossipsub::Message) -> MessageId {
    let mut id = m.source.map(|p| p.to_bytes()).unwrap_or_default();
    if let Some(s) = m.sequence_number {
        id.extend_from_slice(&s.to_be_bytes());
    }
    MessageId::from(id)
}

pub async fn main(args: Vec<String>) -> i32 {
    let (mut topics, mut dials, mut listen) = (Vec::new(), Vec::new(), "/ip4/127.0.0.1/tcp/0".to_string());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let Some(v) = it.next() else {
            say!("error usage flag needs an argument: {a}");
            return 2;
        };
        match a.trim_start_matches('-') {
            "topic" => topics.push(v),
            "dial" => dials.push(v),
            "listen" => listen = v,
            _ => {
                say!("error usage flag provided but not defined: {a}");
                return 2;
            }
        }
    }
    if topics.is_empty() {
        say!("error usage: --topic is needed");
        return 2;
    }
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_behaviour(|key| {
                let cfg = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_secs(1))
                    .validation_mode(ValidationMode::Strict)
                    .message_id_fn(message_id)
                    .build()
                    .map_err(|e| e.to_string())?;
                let gs = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), cfg)?;
                Ok(Behaviour {
                    gossipsub: gs,
                    identify: identify::Behaviour::new(
                        identify::Config::new("ipfs/0.1.0".into(), key.public())
                            .with_agent_version("rust-interop".into()),
                    ),
                })
            })
            .map_err(|e| e.to_string())
        })
        .map(|b| b.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600))).build());
    let mut swarm = match swarm {
        Ok(s) => s,
        Err(e) => {
            say!("error {e}");
            return 1;
        }
    };
    for t in &topics {
        if let Err(e) = swarm.behaviour_mut().gossipsub.subscribe(&IdentTopic::new(t)) {
            say!("error subscribe {t}: {e}");
            return 1;
        }
    }
    let ma: Multiaddr = match listen.parse() {
        Ok(m) => m,
        Err(e) => {
            say!("error listen {listen}: {e}");
            return 1;
        }
    };
    if let Err(e) = swarm.listen_on(ma) {
        say!("error listen {listen}: {e}");
        return 1;
    }
    say!("peer-id {}", swarm.local_peer_id());
    let mut announced = false;
    // stdin is read on a thread of its own, a line at a time.
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    loop {
        tokio::select! {
            _ = term.recv() => return 0,
            _ = tokio::signal::ctrl_c() => return 0,
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    let (topic, text) = match line.strip_prefix("PUBLISH ") {
                        Some(rest) => rest.split_once(' ').unwrap_or((rest, "")),
                        None => (topics[0].as_str(), line.as_str()),
                    };
                    if text.is_empty() {
                        continue;
                    }
                    if let Err(e) = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), text.as_bytes()) {
                        say!("Publish error: {e:?}");
                    }
                }
                None => stdin_open = false,
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    say!("listening {address}/p2p/{}", swarm.local_peer_id());
                    if !announced {
                        announced = true;
                        for d in &dials {
                            match d.parse::<Multiaddr>() {
                                Ok(m) => {
                                    if let Err(e) = swarm.dial(m) {
                                        say!("error dial {d}: {e}");
                                        return 1;
                                    }
                                }
                                Err(e) => {
                                    say!("error dial {d}: {e}");
                                    return 1;
                                }
                            }
                        }
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    say!("error dial: {error}");
                    return 1;
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => match e {
                    gossipsub::Event::Message { message_id, message, .. } => {
                        let from = message.source.map(|p| p.to_string()).unwrap_or_default();
                        say!("Got message: '{}' with id: {} from peer: {from}",
                             String::from_utf8_lossy(&message.data), hex(&message_id.0));
                    }
                    gossipsub::Event::Subscribed { peer_id, topic } => say!("subscribed {peer_id} {topic}"),
                    gossipsub::Event::Unsubscribed { peer_id, topic } => say!("unsubscribed {peer_id} {topic}"),
                    _ => {}
                },
                _ => {}
            },
        }
    }
}
