// A js-libp2p kad-dht peer for the cp2p interop scenario (server mode,
// /ipfs/kad/1.0.0), driven by the same stdin lines as `cp2p dht` and printing
// the same result lines (FIND_PEER too). Keys under /test/ take any value (js refuses keys
// without a namespace), as cp2p does with --namespace test.
//
// node --import ./polyfill.mjs dht.mjs [--listen MA] [--bootstrap MA]...
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'

const o = { listen: '/ip4/127.0.0.1/tcp/0', bootstrap: [] }
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i]
  const v = process.argv[i + 1]
  if (k === '--listen') o.listen = v
  else if (k === '--bootstrap') o.bootstrap.push(v)
  else throw new Error(`unknown option ${k}`)
}

const say = (line) => process.stdout.write(line + '\n')
const enc = new TextEncoder()
const dec = new TextDecoder()

const node = await createLibp2p({
  addresses: { listen: [o.listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      validators: { test: async () => {} },
      selectors: { test: () => 0 }
    })
  }
})
const dht = node.services.dht
say(`Local peer id: ${node.peerId}`)
for (const ma of node.getMultiaddrs()) say(`Listening on ${ma}`)

for (const ma of o.bootstrap) await node.dial(multiaddr(ma))
// The bootstrap peers enter the routing table once identify says they serve kad.
for (let i = 0; i < 100 && o.bootstrap.length && dht.routingTable.size === 0; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100))
}

function providerKey (s) {
  try { return CID.parse(s) } catch { return CID.decode(enc.encode(s)) }
}

async function run (line) {
  const [cmd, key, ...rest] = line.trim().split(/\s+/)
  const value = rest.join(' ')
  try {
    if (cmd === 'PUT' && key && value) {
      for await (const ev of dht.put(enc.encode(key), enc.encode(value))) void ev
      say(`Successfully put record "${key}"`)
    } else if (cmd === 'GET' && key) {
      let got = null
      for await (const ev of dht.get(enc.encode(key))) {
        if (ev.name === 'VALUE' && got == null) got = dec.decode(ev.value)
      }
      say(got == null ? `Failed to get record "${key}": not found` : `Got record "${key}" "${got}"`)
    } else if (cmd === 'PUT_PROVIDER' && key) {
      for await (const ev of dht.provide(providerKey(key))) void ev
      say(`Successfully put provider record "${key}"`)
    } else if (cmd === 'GET_PROVIDERS' && key) {
      const seen = new Set()
      for await (const ev of dht.findProviders(providerKey(key))) {
        if (ev.name !== 'PROVIDER') continue
        for (const p of ev.providers) {
          if (!seen.has(p.id.toString())) say(`Peer ${p.id} provides key "${key}"`)
          seen.add(p.id.toString())
        }
      }
      if (seen.size === 0) say(`No providers found for key "${key}"`)
    } else if (cmd === 'FIND_PEER' && key) {
      let found = null
      for await (const ev of dht.findPeer(peerIdFromString(key))) {
        if (ev.name === 'FINAL_PEER' && found == null) found = ev.peer
      }
      if (found == null) say(`Failed to find peer ${key}: not found`)
      else if (found.multiaddrs.length === 0) say(`Found peer ${key} without addresses`)
      for (const ma of found?.multiaddrs ?? []) say(`Peer ${key} has address ${ma}`)
    } else if (cmd) {
      say('Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | GET_PROVIDERS <key> | FIND_PEER <peer id>')
    }
  } catch (err) {
    // The failure lines of cp2p dht.
    const what = { PUT: `put record "${key}"`, GET: `get record "${key}"`,
      PUT_PROVIDER: `put provider record "${key}"`, GET_PROVIDERS: `get providers for key "${key}"`,
      FIND_PEER: `find peer ${key}` }[cmd]
    say(`Failed to ${what}: ${err.message}`)
  }
}

// Lines run one after the other; the process serves until it is killed.
const lines = createInterface({ input: process.stdin })
let chain = Promise.resolve()
lines.on('line', (line) => { chain = chain.then(() => run(line)) })
