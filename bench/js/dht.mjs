// js-libp2p's side of the DHT benchmark: a local Kademlia network of N nodes
// in this process (TCP + Noise + Yamux on loopback, /ipfs/kad/1.0.0 server
// mode), everyone bootstrapped from node 0, then lookups of random keys
// (getClosestPeers) from random nodes, K at a time, for S seconds. Prints
// {"type":"dht","nodes":N,"lookups":L,"failed":F,"seconds":S,"perSecond":R}.
//
//   node dht.mjs --nodes N --seconds S [--parallel K]
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((a, b) => { resolve = a; reject = b })
    return { promise, resolve, reject }
  }
}
const { randomBytes } = await import('node:crypto')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { createLibp2p } = await import('libp2p')

const o = { nodes: 20, seconds: 10, parallel: 4 }
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '')
  if (!(k in o)) throw new Error(`unknown option ${process.argv[i]}`)
  o[k] = Number(process.argv[i + 1])
}

const nodes = await Promise.all(Array.from({ length: o.nodes }, () => createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { maxConnections: 10000, inboundConnectionThreshold: 10000 },
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({ protocol: '/ipfs/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper })
  }
})))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

for (const n of nodes.slice(1)) await n.dial(nodes[0].getMultiaddrs()[0])
// Tables fill as identify tells each node that the others serve kad.
for (let i = 0; i < 100 && nodes.some((n) => n.services.dht.routingTable.size === 0); i++) await sleep(100)
// A first lookup of their own keys lets every node learn more of the network.
await Promise.all(nodes.map(async (n) => { for await (const ev of n.services.dht.getClosestPeers(n.peerId.toMultihash().bytes)) void ev }))

let lookups = 0
let failed = 0
const t0 = process.hrtime.bigint()
const deadline = Date.now() + o.seconds * 1000
await Promise.all(Array.from({ length: o.parallel }, async () => {
  while (Date.now() < deadline) {
    const n = nodes[Math.floor(Math.random() * nodes.length)]
    let found = 0
    try {
      for await (const ev of n.services.dht.getClosestPeers(randomBytes(32))) {
        if (ev.name === 'FINAL_PEER') found++
      }
    } catch { found = 0 }
    if (found) lookups++
    else failed++
  }
}))
const s = Number(process.hrtime.bigint() - t0) / 1e9
process.stdout.write(JSON.stringify({ type: 'dht', nodes: o.nodes, lookups, failed, seconds: s, perSecond: lookups / s }) + '\n')
await Promise.all(nodes.map((n) => n.stop()))
process.exit(0)
