// A js-libp2p pubsub peer (@libp2p/gossipsub or @libp2p/floodsub) for the
// cp2p interop tests, printing the lines `cp2p pubsub` prints: "Got message:
// '<text>' with id: <hex> from peer: <author>", "subscribed <peer> <topic>",
// "unsubscribed <peer> <topic>", beside "peer-id <id>" and "listening <ma>".
// Each stdin line is published to the first topic ("PUBLISH <topic> <text>"
// to another). The gossipsub message id is go-libp2p-pubsub's default (the
// author's peer id bytes, then the seqno's 8 bytes), as cp2p, go and our
// rust peer make it; js-libp2p's own default puts the public key first.
//
// node --import ./polyfill.mjs pubsub.mjs --topic T [--topic T2] [--listen MA]
//      [--dial MA]... [--router gossipsub|floodsub]
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const o = { listen: '/ip4/127.0.0.1/tcp/0', dial: [], topics: [], router: 'gossipsub' }
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i]
  const v = process.argv[i + 1]
  if (k === '--listen') o.listen = v
  else if (k === '--dial') o.dial.push(v)
  else if (k === '--topic') o.topics.push(v)
  else if (k === '--router') o.router = v
  else { console.log(`error usage unknown option ${k}`); process.exit(2) }
}
if (!o.topics.length) { console.log('error usage: --topic is needed'); process.exit(2) }

const say = (line) => process.stdout.write(line + '\n')
const hex = (b) => Buffer.from(b).toString('hex')
const goMsgId = (msg) => {
  const from = msg.from.toMultihash().bytes
  const seq = Buffer.alloc(8)
  seq.writeBigUInt64BE(BigInt(msg.sequenceNumber))
  return Buffer.concat([Buffer.from(from), seq])
}

const pubsub = o.router === 'floodsub'
  ? floodsub()
  : gossipsub({ msgIdFn: (msg) => msg.type === 'signed' ? goMsgId(msg) : msg.data, allowPublishToZeroTopicPeers: true })
const node = await createLibp2p({
  addresses: { listen: [o.listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), pubsub }
})
const ps = node.services.pubsub
ps.addEventListener('message', (evt) => {
  const m = evt.detail
  if (m.type !== 'signed' || m.from.equals(node.peerId)) return
  say(`Got message: '${new TextDecoder().decode(m.data)}' with id: ${hex(goMsgId(m))} from peer: ${m.from}`)
})
ps.addEventListener('subscription-change', (evt) => {
  for (const s of evt.detail.subscriptions) {
    say(`${s.subscribe ? 'subscribed' : 'unsubscribed'} ${evt.detail.peerId} ${s.topic}`)
  }
})
for (const t of o.topics) ps.subscribe(t)
say(`peer-id ${node.peerId}`)
for (const ma of node.getMultiaddrs()) say(`listening ${ma}`)
for (const d of o.dial) {
  try { await node.dial(multiaddr(d)) } catch (err) { say(`error dial ${d}: ${err.message}`); process.exit(1) }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  let topic = o.topics[0]
  let text = line
  if (line.startsWith('PUBLISH ')) {
    const rest = line.slice(8)
    const sp = rest.indexOf(' ')
    topic = sp < 0 ? rest : rest.slice(0, sp)
    text = sp < 0 ? '' : rest.slice(sp + 1)
  }
  if (!text) return
  try { await ps.publish(topic, new TextEncoder().encode(text)) } catch (err) { say(`Publish error: ${err.message}`) }
})
lines.on('close', () => {}) // stdin's end is not the end: serve until killed
process.on('SIGTERM', async () => { await node.stop(); process.exit(0) })
