// The js-libp2p side of cp2p's benchmarks and perf interop test, over TCP
// (or a websocket over it, --transport ws) + Noise + Yamux. It speaks /perf/1.0.0 (libp2p specs perf/perf.md), written
// here on the libp2p stream API since @libp2p/perf does not install, with
// the perf runner's command line and JSON lines:
//
//   node perf.mjs --run-server --server-address IP:PORT
//   node perf.mjs --server-address IP:PORT --upload-bytes N --download-bytes M [--streams K]
//   node perf.mjs --server-address IP:PORT --conns N [--parallel K]
//       connection rate: N connections, each TCP + Noise + Yamux, then a
//       1-byte perf exchange (time to first byte), then closed; prints
//       {"type":"conns","connections":N,"seconds":S,"perSecond":R,"ttfbMs":{"p50":..,"p99":..}}
//
// The server has the runner's fixed identity (Ed25519, seed of 32 zero
// bytes), so clients dial /ip4/IP/tcp/PORT/p2p/<that id>.

// Node 20 lacks Promise.withResolvers, which js-libp2p 3 uses: set it before loading it.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((a, b) => { resolve = a; reject = b })
    return { promise, resolve, reject }
  }
}
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
const { tcp } = await import('@libp2p/tcp')
const { webSockets } = await import('@libp2p/websockets')
// Node 20 has no global WebSocket (22 has), which @libp2p/websockets dials with.
if (typeof globalThis.WebSocket !== 'function') globalThis.WebSocket = (await import('ws')).WebSocket
const { multiaddr } = await import('@multiformats/multiaddr')
const { createLibp2p } = await import('libp2p')

const PERF = '/perf/1.0.0'
const CHUNK = 256 * 1024
const ZEROS = new Uint8Array(CHUNK)

function parseArgs (argv) {
  const o = { server: false, up: 0n, down: 0n, streams: 1, conns: 0, parallel: 1 }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    const v = argv[i + 1]
    if (k === '--run-server') {
      o.server = true
      if (v === 'true' || v === 'false') { o.server = v === 'true'; i++ }
      continue
    }
    if (v === undefined) throw new Error(`${k} needs a value`)
    i++
    if (k === '--server-address') o.address = v
    else if (k === '--transport') { if (v !== 'tcp' && v !== 'ws') throw new Error('tcp or ws'); o.ws = v === 'ws' }
    else if (k === '--upload-bytes') o.up = BigInt(v)
    else if (k === '--download-bytes') o.down = BigInt(v)
    else if (k === '--streams') o.streams = Number(v)
    else if (k === '--conns') o.conns = Number(v)
    else if (k === '--parallel') o.parallel = Number(v)
    else throw new Error(`unknown option ${k}`)
  }
  if (!o.address) throw new Error('give --server-address IP:PORT')
  return o
}

let wsSuffix = ''
function toMultiaddr (address) {
  const i = address.lastIndexOf(':')
  let host = address.slice(0, i)
  const port = address.slice(i + 1)
  if (host.startsWith('[')) host = host.slice(1, -1)
  return `/${host.includes(':') ? 'ip6' : 'ip4'}/${host}/tcp/${port}${wsSuffix}`
}

async function newNode (opts = {}) {
  return createLibp2p({
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // A benchmark peer takes every connection and stream it is offered.
    connectionManager: { maxConnections: 100000, inboundConnectionThreshold: 100000, maxIncomingPendingConnections: 100000 },
    connectionMonitor: { enabled: false },
    ...opts
  })
}

const handlerOpts = { maxInboundStreams: 10000, maxOutboundStreams: 10000 }

// Server: read the 8-byte size, drain the upload to EOF, then send.
async function serve (stream) {
  try {
    const head = new Uint8Array(8)
    let got = 0
    for await (const chunk of stream) {
      const b = chunk.subarray()
      if (got < 8) {
        const k = Math.min(8 - got, b.length)
        head.set(b.subarray(0, k), got)
        got += k
      }
    }
    if (got < 8) { stream.abort(new Error('perf: EOF before the 8-byte header')); return }
    let left = new DataView(head.buffer).getBigUint64(0)
    while (left > 0n) {
      const n = left < BigInt(CHUNK) ? Number(left) : CHUNK
      if (!stream.send(n === CHUNK ? ZEROS : ZEROS.subarray(0, n))) await stream.onDrain()
      left -= BigInt(n)
    }
    await stream.close()
  } catch (err) {
    stream.abort(err)
  }
}

// Client: one perf exchange on a new stream of conn; counts go to c.
async function exchange (conn, up, down, c) {
  const stream = await conn.newStream(PERF, handlerOpts)
  const reader = (async () => {
    let n = 0n
    for await (const chunk of stream) {
      const len = BigInt(chunk.byteLength)
      if (c.onFirstByte && n === 0n && len > 0n) c.onFirstByte()
      n += len
      c.down += len
    }
    if (n !== down) throw new Error(`perf: got ${n} bytes back, asked ${down}`)
  })()
  const head = new Uint8Array(8)
  new DataView(head.buffer).setBigUint64(0, down)
  if (!stream.send(head)) await stream.onDrain()
  let left = up
  while (left > 0n) {
    const n = left < BigInt(CHUNK) ? Number(left) : CHUNK
    if (!stream.send(n === CHUNK ? ZEROS : ZEROS.subarray(0, n))) await stream.onDrain()
    left -= BigInt(n)
    c.up += BigInt(n)
  }
  await stream.close()
  await reader
}

const line = (o) => process.stdout.write(JSON.stringify(o) + '\n')

async function connRate (o, target) {
  const nodes = await Promise.all(Array.from({ length: o.parallel }, () => newNode()))
  const ttfb = []
  let next = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(nodes.map(async (node) => {
    while (next < o.conns) {
      next++
      const t = process.hrtime.bigint()
      const c = { up: 0n, down: 0n, onFirstByte: () => ttfb.push(Number(process.hrtime.bigint() - t) / 1e6) }
      const conn = await node.dial(target)
      await exchange(conn, 1n, 1n, c)
      await conn.close()
    }
  }))
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  ttfb.sort((a, b) => a - b)
  const q = (p) => ttfb[Math.min(ttfb.length - 1, Math.floor(p * ttfb.length))]
  line({ type: 'conns', connections: o.conns, seconds: s, perSecond: o.conns / s, ttfbMs: { p50: q(0.5), p99: q(0.99) } })
  await Promise.all(nodes.map((n) => n.stop()))
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  if (o.ws) wsSuffix = '/ws'
  const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32))
  if (o.server) {
    const node = await newNode({ privateKey: key, addresses: { listen: [toMultiaddr(o.address)] } })
    await node.handle(PERF, serve, handlerOpts)
    for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma}\n`)
    const stop = async () => { await node.stop().catch(() => {}); process.exit(0) }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    return
  }
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const target = multiaddr(`${toMultiaddr(o.address)}/p2p/${peerIdFromPrivateKey(key)}`)
  if (o.conns) return connRate(o, target)

  const t0 = process.hrtime.bigint()
  const node = await newNode()
  const c = { up: 0n, down: 0n }
  let last = { t: t0, up: 0n, down: 0n }
  const timer = setInterval(() => {
    const t = process.hrtime.bigint()
    line({ type: 'intermediary', timeSeconds: Number(t - last.t) / 1e9, uploadBytes: Number(c.up - last.up), downloadBytes: Number(c.down - last.down) })
    last = { t, up: c.up, down: c.down }
  }, 1000)
  const conn = await node.dial(target)
  await Promise.all(Array.from({ length: o.streams }, () => exchange(conn, o.up, o.down, c)))
  clearInterval(timer)
  line({ type: 'final', timeSeconds: Number(process.hrtime.bigint() - t0) / 1e9, uploadBytes: Number(c.up), downloadBytes: Number(c.down) })
  await node.stop()
}

main().then(() => {}, (err) => {
  process.stderr.write(`perf.mjs: ${err.stack ?? err}\n`)
  process.exit(1)
})
