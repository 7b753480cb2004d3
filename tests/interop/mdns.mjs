// A js-libp2p peer with @libp2p/mdns for tests/cli/mdns_netns.sh: prints
// "Local peer id: <id>", then "discovered <peer id> <multiaddr>" per address of
// every peer:discovery event, like `cp2p mdns` does. Runs until SIGINT/SIGTERM.
//
// node --import ./polyfill.mjs mdns.mjs [--listen MA] [--interval S]
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { mdns } from '@libp2p/mdns'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

function parseArgs (argv) {
  const o = { listen: '/ip4/0.0.0.0/tcp/0', interval: 10 }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    const v = argv[i + 1]
    if (k === '--listen') { o.listen = v; i++ } else if (k === '--interval') { o.interval = Number(v); i++ } else { throw new Error(`unknown option ${k}`) }
  }
  return o
}

const say = (line) => process.stdout.write(line + '\n')

const opts = parseArgs(process.argv.slice(2))
const node = await createLibp2p({
  addresses: { listen: [opts.listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  peerDiscovery: [mdns({ interval: opts.interval * 1000 })]
})
node.addEventListener('peer:discovery', (evt) => {
  for (const ma of evt.detail.multiaddrs) say(`discovered ${evt.detail.id.toString()} ${ma.toString()}`)
})
say(`Local peer id: ${node.peerId.toString()}`)
const stop = async () => { await node.stop(); process.exit(0) }
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
