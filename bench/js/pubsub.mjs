// js-libp2p's side of the pubsub benchmark, the twin of
// tests/scale/pubsub_scale.c: N gossipsub nodes in this process (TCP + Noise
// + Yamux on loopback) in a random topology (each dials degree/2 others), all
// subscribed to one topic; M messages from random publishers at R a second.
// Prints {"type":"pubsub","nodes":N,...,"perSecond": messages delivered
// everywhere per second from the first publish to the last delivery,
// "p50Ms","p99Ms","delivered","expected",...}.
//
//   node pubsub.mjs --nodes N --messages M --rate R [--degree D] [--size B] [--timeout S]
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((a, b) => { resolve = a; reject = b })
    return { promise, resolve, reject }
  }
}
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { gossipsub } = await import('@libp2p/gossipsub')
const { identify } = await import('@libp2p/identify')
const { tcp } = await import('@libp2p/tcp')
const { createLibp2p } = await import('libp2p')

const o = { nodes: 30, messages: 1000, rate: 1000, degree: 6, size: 64, timeout: 60 }
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '')
  if (!(k in o)) throw new Error(`unknown option ${process.argv[i]}`)
  o[k] = Number(process.argv[i + 1])
}
const TOPIC = 'scale'
const nodes = await Promise.all(Array.from({ length: o.nodes }, () => createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { maxConnections: 10000, inboundConnectionThreshold: 10000 },
  connectionMonitor: { enabled: false },
  services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }) }
})))
const sentAt = new Array(o.messages).fill(0)
const got = new Uint8Array(o.messages * o.nodes)
const lat = []
let delivered = 0
let tFirst = 0
let tLast = 0
const now = () => Number(process.hrtime.bigint()) / 1e6
nodes.forEach((n, i) => {
  n.services.pubsub.subscribe(TOPIC)
  n.services.pubsub.addEventListener('message', (evt) => {
    const text = new TextDecoder().decode(evt.detail.data)
    const idx = Number(text.slice(1, text.indexOf(' ')))
    if (!(idx >= 0 && idx < o.messages) || got[idx * o.nodes + i]) return
    got[idx * o.nodes + i] = 1
    tLast = now()
    lat.push(tLast - sentAt[idx])
    delivered++
  })
})
const dials = Math.max(1, Math.floor(o.degree / 2))
await Promise.all(nodes.flatMap((n, i) => Array.from({ length: dials }, async () => {
  let j = Math.floor(Math.random() * o.nodes)
  if (j === i) j = (j + 1) % o.nodes
  try { await n.dial(nodes[j].getMultiaddrs()[0]) } catch {}
})))
// Wired once every node has a mesh peer, and a couple of heartbeats later.
const t0 = Date.now()
while (nodes.some((n) => n.services.pubsub.getMeshPeers(TOPIC).length === 0) && Date.now() - t0 < o.timeout * 1000) {
  await new Promise((resolve) => setTimeout(resolve, 100))
}
await new Promise((resolve) => setTimeout(resolve, 2000))
const pad = 'x'.repeat(o.size)
for (let m = 0; m < o.messages; m++) {
  const due = m * 1000 / o.rate
  const wait = (tFirst ? tFirst + due : 0) - now()
  if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
  const from = Math.floor(Math.random() * o.nodes)
  const body = `m${m} ${pad}`.slice(0, Math.max(o.size, String(m).length + 2))
  sentAt[m] = now()
  if (!tFirst) tFirst = sentAt[m]
  got[m * o.nodes + from] = 1
  delivered++
  lat.push(0)
  nodes[from].services.pubsub.publish(TOPIC, new TextEncoder().encode(body)).catch(() => {})
}
const expected = o.messages * o.nodes
const tEnd = Date.now() + o.timeout * 1000
while (delivered < expected && Date.now() < tEnd) await new Promise((resolve) => setTimeout(resolve, 50))
lat.sort((a, b) => a - b)
const span = (tLast - tFirst) / 1000
console.log(JSON.stringify({
  type: 'pubsub', nodes: o.nodes, degree: o.degree, messages: o.messages, delivered, expected,
  seconds: Number(span.toFixed(3)), perSecond: Number((span > 0 ? o.messages / span : 0).toFixed(1)),
  p50Ms: Number((lat[Math.floor(lat.length / 2)] ?? 0).toFixed(2)),
  p99Ms: Number((lat[Math.floor(lat.length * 0.99)] ?? 0).toFixed(2))
}))
await Promise.all(nodes.map((n) => n.stop()))
process.exit(0)
