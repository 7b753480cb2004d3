// The daemon factory for @libp2p/interop: "go" is cp2pd (started with p2pd's
// flags), "js" is js-libp2p behind @libp2p/daemon-server. CP2PD names the binary.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createClient } from '@libp2p/daemon-client'
import { createServer } from '@libp2p/daemon-server'
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

const CP2PD = process.env.CP2PD

function unsupported (options) {
  if (options.transport != null && options.transport !== 'tcp') return `transport ${options.transport}`
  if (options.pubsub === true) return 'pubsub'
  if (options.relay === true) return 'relay'
  return null
}

async function spawnCp2pd (options) {
  const dir = mkdtempSync(join(tmpdir(), 'cp2pd-'))
  const sock = join(dir, 'p2pd.sock')
  const args = ['-q=false', '-listen', `/unix${sock}`]
  args.push(options.noListen === true ? '-noListenAddrs' : '-hostAddrs=/ip4/127.0.0.1/tcp/0')
  if (options.key != null) args.push('-id', options.key)
  if (options.muxer != null) args.push('-muxer', options.muxer)
  const enc = options.encryption ?? 'noise'
  args.push(`-noise=${enc === 'noise'}`, `-tls=${enc === 'tls'}`, `-plaintext=${enc === 'plaintext'}`)
  if (options.dht === true) args.push('-dht')
  const proc = spawn(CP2PD, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr.on('data', (d) => { err += d })
  await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d
      if (/^Peer Addrs:$/m.test(out)) resolve()
    })
    proc.on('exit', (code) => reject(new Error(`cp2pd ${args.join(' ')} exited with ${code}: ${err}`)))
  })
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  return {
    client: createClient(multiaddr('/unix/' + encodeURIComponent(sock))),
    async stop () {
      proc.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

async function spawnJs (options) {
  const enc = { noise, tls, plaintext }[options.encryption ?? 'noise']
  const services = { identify: identify(), ping: ping() }
  if (options.dht === true) {
    services.dht = kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper })
  }
  const node = await createLibp2p({
    privateKey: options.key != null ? privateKeyFromProtobuf(readFileSync(options.key)) : undefined,
    addresses: { listen: options.noListen === true ? [] : ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
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

export const factory = {
  async spawn (options) {
    const why = unsupported(options)
    if (why != null) throw new UnsupportedError(`cp2p interop: ${why} is not supported`)
    return options.type === 'go' ? spawnCp2pd(options) : spawnJs(options)
  }
}
