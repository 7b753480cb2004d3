// A js-libp2p peer for the cp2p interop scenarios: tcp and ws + noise + yamux|mplex,
// ping, identify and an /echo/1.0.0 protocol. One machine-readable line per
// fact on stdout ("listening <ma>", "ping rtt=<ms> ms", "identified ...",
// "echo ok ...", "error ..."); exit 0 when the requested work succeeded.
//
// node --import ./polyfill.mjs peer.mjs --muxer yamux|mplex
//      [--listen MA] [--announce MA,MA...] [--dial MA] [--ping N] [--wait-identify]
//      [--echo-streams N --echo-size BYTES] [--agent NAME] [--psk SWARM_KEY_FILE] [--autonat] [--autonat-v2]
// --autonat: @libp2p/autonat's service (AutoNAT v1 server and client);
// --autonat-v2: @libp2p/autonat-v2's (AutoNAT v2 server and client).
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { autoNAT } from '@libp2p/autonat'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const ECHO = '/echo/1.0.0'
const CHUNK = 64 * 1024

function parseArgs (argv) {
  const o = { muxer: 'yamux', ping: 0, echoStreams: 0, echoSize: 1024 * 1024, waitIdentify: false, agent: 'js-interop' }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    const v = argv[i + 1]
    if (k === '--muxer') { o.muxer = v; i++ } else if (k === '--listen') { o.listen = v; i++ } else if (k === '--dial') { o.dial = v; i++ } else if (k === '--ping') { o.ping = Number(v); i++ } else if (k === '--echo-streams') { o.echoStreams = Number(v); i++ } else if (k === '--echo-size') { o.echoSize = Number(v); i++ } else if (k === '--agent') { o.agent = v; i++ } else if (k === '--announce') { o.announce = v.split(','); i++ } else if (k === '--psk') { o.psk = v; i++ } else if (k === '--wait-identify') { o.waitIdentify = true } else if (k === '--autonat') { o.autonat = true } else if (k === '--autonat-v2') { o.autonatV2 = true } else { throw new Error(`unknown option ${k}`) }
  }
  return o
}

function say (line) {
  process.stdout.write(line + '\n')
}

// Echo with backpressure: stop reading while the write buffer drains.
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

function pattern (index, offset, n) {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (index * 31 + offset + i) & 0xff
  return b
}

// Send size bytes on one echo stream while reading them back; resolve with the
// number of bytes that came back identical.
async function echoOnce (conn, index, size) {
  const stream = await conn.newStream(ECHO)
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
    const b = pattern(index, off, Math.min(CHUNK, size - off))
    sent.update(b)
    if (!stream.send(b)) await stream.onDrain()
  }
  await stream.close()
  await reader
  if (received !== size || sent.digest('hex') !== got.digest('hex')) {
    throw new Error(`echo stream ${index}: ${received} of ${size} bytes came back intact`)
  }
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const node = await createLibp2p({
    addresses: { listen: o.listen ? [o.listen] : [], announce: o.announce ?? [] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    // js-mplex drops a connection whose remote opens more than 5 streams a
    // second (it has no backpressure); the 50-stream scenario needs more.
    streamMuxers: [o.muxer === 'mplex' ? mplex({ disconnectThreshold: 1000 }) : yamux()],
    services: { ping: ping(), identify: identify({ agentVersion: o.agent }), ...(o.autonat ? { autonat: autoNAT() } : {}), ...(o.autonatV2 ? { autonatV2: autoNATv2() } : {}) },
    nodeInfo: { userAgent: o.agent },
    connectionMonitor: { enabled: false },
    ...(o.psk ? { connectionProtector: preSharedKey({ psk: readFileSync(o.psk) }) } : {})
  })
  await node.handle(ECHO, echoHandler, { maxInboundStreams: 256, maxOutboundStreams: 256 })

  let identified
  const identifiedOnce = new Promise(resolve => { identified = resolve })
  node.addEventListener('peer:identify', (ev) => {
    const r = ev.detail
    say(`identified ${r.peerId} agent=${r.agentVersion ?? ''} protocols=${r.protocols.join(',')} addrs=${r.listenAddrs.map(String).join(',')} record=${r.signedPeerRecord?.seq ?? 'none'}`)
    identified(r)
  })
  node.addEventListener('peer:connect', (ev) => say(`connected ${ev.detail}`))

  say(`peer-id ${node.peerId}`)
  for (const ma of node.getMultiaddrs()) say(`listening ${ma}`)

  const stop = async (code) => {
    await node.stop().catch(() => {})
    process.exit(code)
  }
  process.on('SIGTERM', () => stop(0))
  process.on('SIGINT', () => stop(0))

  if (!o.dial) return
  const target = multiaddr(o.dial)
  try {
    // Every stream goes on this one connection, whatever js would dial otherwise.
    const conn = await node.dial(target)
    for (let i = 0; i < o.ping; i++) {
      const rtt = await node.services.ping.ping(conn.remotePeer)
      say(`ping rtt=${rtt} ms`)
    }
    if (o.echoStreams) {
      const t0 = Date.now()
      await Promise.all(Array.from({ length: o.echoStreams }, (_, i) => echoOnce(conn, i, o.echoSize)))
      say(`echo ok streams=${o.echoStreams} bytes=${o.echoSize} ms=${Date.now() - t0}`)
    }
    if (o.waitIdentify) {
      await Promise.race([identifiedOnce, new Promise((resolve, reject) => setTimeout(() => reject(new Error('no identify within 10 s')), 10000))])
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
