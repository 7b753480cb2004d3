// Daemons for @libp2p/interop. The suite asks for two types, "js" and "go";
// a pairing maps each to one of three implementations:
//   js     js-libp2p behind @libp2p/daemon-server
//   p2pd   the real go-libp2p-daemon (tests/interop/p2pd), binary in $P2PD
//   cp2pd  ours, binary in $CP2PD, started with the same flags as p2pd
// makeFactory({ js: 'cp2pd', go: 'p2pd' }) is the suite's factory for one pairing.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createClient } from '@libp2p/daemon-client'
import { createServer } from '@libp2p/daemon-server'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { UnsupportedError } from '@libp2p/interop'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { plaintext } from '@libp2p/plaintext'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

export const IMPLS = ['js', 'p2pd', 'cp2pd']

// Why a daemon cannot be had; null when it can. Only TCP: cp2p has no other
// transport yet, and js-libp2p in node has neither webtransport (a browser
// transport) nor webrtc-direct here, so no pairing could run those cases.
export function unsupported (impl, options) {
  if (options.transport != null && options.transport !== 'tcp') return `transport ${options.transport}`
  return null
}

// The flags p2pd is started with; cp2pd takes the same ones.
function daemonArgs (sock, options) {
  const args = ['-q=false', '-listen', `/unix${sock}`]
  args.push(options.noListen === true ? '-noListenAddrs' : '-hostAddrs=/ip4/127.0.0.1/tcp/0')
  if (options.key != null) args.push('-id', options.key)
  if (options.muxer != null) args.push('-muxer', options.muxer)
  const enc = options.encryption ?? 'noise'
  // p2pd offers plaintext unless told not to: say every one
  args.push(`-noise=${enc === 'noise'}`, `-tls=${enc === 'tls'}`, `-plaintext=${enc === 'plaintext'}`)
  // -dhtServer, not -dht: p2pd's -dht is kad-dht's auto mode, a client until
  // AutoNAT finds the host public, which on loopback it never does
  if (options.dht === true) args.push('-dhtServer')
  if (options.pubsub === true) args.push('-pubsub', `-pubsubRouter=${options.pubsubRouter ?? 'gossipsub'}`)
  // -relay is on by default in p2pd (a circuit relay v2 service); say it anyway
  args.push(`-relay=${options.relay === true ? 'true' : 'false'}`)
  return args
}

async function spawnDaemon (impl, bin, options) {
  const dir = mkdtempSync(join(tmpdir(), `${impl}-`))
  const sock = join(dir, 'p2pd.sock')
  const args = daemonArgs(sock, options)
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr.on('data', (d) => { err += d })
  try {
    await new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => {
        out += d
        if (/^Peer Addrs:$/m.test(out)) resolve()
      })
      proc.on('exit', (code) => reject(new Error(`${impl} ${args.join(' ')} exited with ${code}: ${err}`)))
    })
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  return {
    client: createClient(multiaddr('/unix/' + encodeURIComponent(sock))),
    async stop () {
      proc.kill('SIGTERM')
      const { code, signal } = await exited
      rmSync(dir, { recursive: true, force: true })
      // cp2pd stops cleanly on SIGTERM (a sanitizer's report is a failure
      // too); p2pd exits 0 or 143, whichever its goroutines reach first
      const clean = impl === 'cp2pd' ? code === 0 : (code === 0 || code === 143 || signal === 'SIGTERM')
      if (!clean || /Sanitizer/.test(err)) {
        throw new Error(`${impl} did not stop cleanly (exit ${code ?? signal}): ${err.slice(-2000)}`)
      }
    }
  }
}

async function spawnJs (options) {
  const enc = { noise, tls, plaintext }[options.encryption ?? 'noise']
  const services = { identify: identify(), ping: ping() }
  if (options.dht === true) services.dht = kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper })
  if (options.pubsub === true) {
    services.pubsub = options.pubsubRouter === 'floodsub' ? floodsub() : gossipsub({ allowPublishToZeroTopicPeers: true })
  }
  if (options.relay === true) services.relay = circuitRelayServer()
  const node = await createLibp2p({
    privateKey: options.key != null ? privateKeyFromProtobuf(readFileSync(options.key)) : undefined,
    addresses: { listen: options.noListen === true ? [] : ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [enc()],
    streamMuxers: [options.muxer === 'mplex' ? mplex() : yamux()],
    services
  })
  const server = createServer(multiaddr('/ip4/127.0.0.1/tcp/0'), node)
  await server.start()
  return {
    client: createClient(server.getMultiaddr()),
    async stop () {
      await server.stop()
      await node.stop()
    }
  }
}

export function makeFactory (pairing) {
  return {
    async spawn (options) {
      const impl = pairing[options.type]
      const why = unsupported(impl, options)
      if (why != null) throw new UnsupportedError(`${impl}: ${why} is not in this comparison`)
      if (impl === 'js') return spawnJs(options)
      const bin = impl === 'p2pd' ? process.env.P2PD : process.env.CP2PD
      if (!bin) throw new Error(`set ${impl === 'p2pd' ? 'P2PD' : 'CP2PD'} to the ${impl} binary`)
      return spawnDaemon(impl, bin, options)
    }
  }
}
