// What runs inside Chromium: a js-libp2p node (websockets, noise, yamux,
// identify, ping, gossipsub) that dials cp2p over /ws. runTest reports each
// fact through window.say (exposed by run.mjs) as one line.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const say = (line) => window.say(line)
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
async function until (what, fn, ms = 20000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

window.runTest = async ({ pingAddr, pubsubAddr, topic, echoBytes }) => {
  const node = await createLibp2p({
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false }, // loopback is fine here
    services: {
      identify: identify({ agentVersion: 'js-browser' }),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: false, emitSelf: false })
    }
  })
  say(`browser peer-id ${node.peerId} agent=${navigator.userAgent.includes('Chrome') ? 'chromium' : navigator.userAgent}`)

  const identified = new Map()
  node.addEventListener('peer:identify', (ev) => identified.set(ev.detail.peerId.toString(), ev.detail))

  // ping, identify and echo with `cp2p ping --echo`
  const target = multiaddr(pingAddr)
  const conn = await node.dial(target)
  say(`connected ${conn.remotePeer} over ${conn.remoteAddr}`)
  for (let i = 0; i < 3; i++) say(`ping rtt=${await node.services.ping.ping(conn.remotePeer)} ms`)
  const id = await until('identify', () => identified.get(conn.remotePeer.toString()))
  say(`identified agent=${id.agentVersion} protocols=${id.protocols.join(',')}`)

  const stream = await conn.newStream('/echo/1.0.0')
  const sent = new Uint8Array(echoBytes)
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + 3) & 0xff
  let got = 0
  let same = true
  const reader = (async () => {
    for await (const chunk of stream) {
      const b = chunk.subarray()
      for (let i = 0; i < b.length; i++) if (b[i] !== sent[got + i]) same = false
      got += b.length
    }
  })()
  for (let off = 0; off < sent.length; off += 16384) {
    if (!stream.send(sent.subarray(off, off + 16384))) await stream.onDrain()
  }
  await stream.close()
  await reader
  say(same && got === sent.length ? `echo ok bytes=${got}` : `echo bad got=${got} same=${same}`)

  // pubsub with `cp2p pubsub`: both directions
  const ps = node.services.pubsub
  const fromCp2p = new Promise(resolve => ps.addEventListener('message', (ev) => {
    if (ev.detail.topic === topic) resolve(new TextDecoder().decode(ev.detail.data))
  }))
  ps.subscribe(topic)
  const psConn = await node.dial(multiaddr(pubsubAddr))
  await until('cp2p in the topic', () => ps.getSubscribers(topic).some(p => p.equals(psConn.remotePeer)))
  await until('a mesh with cp2p', () => ps.getMeshPeers(topic).length > 0)
  say(`subscribed ${topic}`)
  await ps.publish(topic, new TextEncoder().encode('hello from the browser'))
  say('published')
  say(`got message ${await Promise.race([fromCp2p, sleep(30000).then(() => '(none in 30 s)')])}`)
  await node.stop()
  say('done')
}
window.pageReady = true
