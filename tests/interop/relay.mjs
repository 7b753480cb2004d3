// js-libp2p (@libp2p/circuit-relay-v2) in the three roles of a relayed
// connection, for tests/cli/relay_interop.sh: tcp + noise + yamux, ping,
// identify and /echo/1.0.0 (also on limited, i.e. relayed, connections).
//
// node --import ./polyfill.mjs relay.mjs server --listen MA
// node --import ./polyfill.mjs relay.mjs listen --relay MA [--tcp MA] [--dcutr]
//                                                (reserve on MA, listen through it; also on
//                                                 tcp at MA; DCUtR hole punching, @libp2p/dcutr)
// node --import ./polyfill.mjs relay.mjs dial --dial MA [--ping N] [--echo-size BYTES]
//
// Lines on stdout: "peer-id <id>", "listening <ma>" (the listener: its
// /p2p-circuit address once reserved), "connected <id> limited=<bool> addr=<ma>",
// "ping rtt=<ms> ms", "echo ok bytes=B", "error ...". Exit 0 when the
// requested work succeeded.
import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const ECHO = '/echo/1.0.0'
const CHUNK = 16 * 1024

function say (line) {
  process.stdout.write(line + '\n')
}

function parseArgs (argv) {
  const o = { mode: argv[0], ping: 0, echoSize: 0 }
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i]
    const v = argv[++i]
    if (k === '--listen') o.listen = v
    else if (k === '--relay') o.relay = v
    else if (k === '--dial') o.dial = v
    else if (k === '--ping') o.ping = Number(v)
    else if (k === '--echo-size') o.echoSize = Number(v)
    else if (k === '--tcp') o.tcp = v
    else if (k === '--dcutr') { o.dcutr = true; i-- }
    else throw new Error(`unknown option ${k}`)
  }
  if (!['server', 'listen', 'dial'].includes(o.mode)) throw new Error('mode: server, listen or dial')
  return o
}

async function echoHandler (stream) {
  try {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await stream.onDrain()
    }
    await stream.close()
  } catch (err) {
    stream.abort(err)
  }
}

async function echoOnce (conn, size) {
  const stream = await conn.newStream(ECHO, { runOnLimitedConnection: true })
  const sent = createHash('sha256')
  const got = createHash('sha256')
  let received = 0
  const reader = (async () => {
    for await (const chunk of stream) {
      const bytes = chunk.subarray()
      got.update(bytes)
      received += bytes.length
    }
  })()
  for (let off = 0; off < size; off += CHUNK) {
    const b = new Uint8Array(Math.min(CHUNK, size - off)).map((_, i) => (off + i) & 0xff)
    sent.update(b)
    if (!stream.send(b)) await stream.onDrain()
  }
  await stream.close()
  await reader
  if (received !== size || sent.digest('hex') !== got.digest('hex')) {
    throw new Error(`echo: ${received} of ${size} bytes came back intact`)
  }
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const services = { ping: ping(), identify: identify({ agentVersion: 'js-interop' }) }
  if (o.mode === 'server') {
    // The spec's defaults, as go-libp2p's: 2 min and 128 KiB per circuit.
    services.relay = circuitRelayServer({ reservations: { maxReservations: 128 } })
  }
  if (o.dcutr) services.dcutr = dcutr()
  const node = await createLibp2p({
    // The listener reserves on the relay as it starts listening there.
    // A public --tcp address (fixed port) is announced at once: js-libp2p
    // otherwise waits for AutoNAT to confirm it before it tells peers.
    addresses: {
      listen: o.mode === 'server' ? [o.listen ?? '/ip4/127.0.0.1/tcp/0'] : o.mode === 'listen' ? [`${o.relay}/p2p-circuit`, ...(o.tcp ? [o.tcp] : [])] : [],
      appendAnnounce: o.tcp && !o.tcp.endsWith('/tcp/0') ? [o.tcp] : []
    },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services,
    connectionMonitor: { enabled: false }
  })
  await node.handle(ECHO, echoHandler, { runOnLimitedConnection: true })
  node.addEventListener('connection:open', (ev) => say(`connected ${ev.detail.remotePeer} limited=${ev.detail.limits != null} addr=${ev.detail.remoteAddr}`))
  say(`peer-id ${node.peerId}`)
  const stop = async (code) => {
    await node.stop().catch(() => {})
    process.exit(code)
  }
  process.on('SIGTERM', () => stop(0))
  process.on('SIGINT', () => stop(0))
  try {
    if (o.mode === 'server') {
      for (const ma of node.getMultiaddrs()) say(`listening ${ma}`)
      return
    }
    if (o.mode === 'listen') {
      const deadline = Date.now() + 15000
      while (!node.getMultiaddrs().some(ma => ma.toString().includes('/p2p-circuit'))) {
        if (Date.now() > deadline) throw new Error('no circuit address within 15 s')
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      for (const ma of node.getMultiaddrs()) say(`listening ${ma}`)
      return
    }
    const conn = await node.dial(multiaddr(o.dial))
    for (let i = 0; i < o.ping; i++) {
      const rtt = await node.services.ping.ping(conn.remotePeer)
      say(`ping rtt=${rtt} ms`)
    }
    if (o.echoSize) {
      await echoOnce(conn, o.echoSize)
      say(`echo ok bytes=${o.echoSize}`)
    }
  } catch (err) {
    say(`error ${err.name ?? ''} ${err.message ?? err}`)
    await stop(1)
  }
  await stop(0)
}

main().catch(err => {
  say(`error ${err.name ?? ''} ${err.message ?? err}`)
  process.exit(1)
})
