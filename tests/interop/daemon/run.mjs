// The @libp2p/interop cases cp2pd takes part in (connect, streams, DHT), run
// under mocha: node --import ../polyfill.mjs run.mjs [mocha --grep pattern]
import Mocha from 'mocha'
import { factory } from './factory.mjs'

if (!process.env.CP2PD) {
  console.error('set CP2PD to the cp2pd binary')
  process.exit(2)
}
const mocha = new Mocha({ timeout: 30000, reporter: process.env.MOCHA_REPORTER ?? 'spec' })
if (process.argv[2]) mocha.grep(process.argv[2])
mocha.suite.emit('pre-require', globalThis, 'interop', mocha)
const { connectInteropTests, streamInteropTests, dhtInteropTests } = await import('@libp2p/interop')
connectInteropTests(factory)
await streamInteropTests(factory)
await dhtInteropTests(factory)
mocha.run((failures) => { process.exitCode = failures ? 1 : 0 })
