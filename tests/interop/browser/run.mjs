// Bundles page.mjs with esbuild, serves it on 127.0.0.1, opens it in Debian's
// Chromium (headless, driven by playwright-core) and runs its test against
// cp2p; every line the page says is printed here. Exit 0 if the page's
// test ran to its end, 1 otherwise.
//
// node run.mjs --ping MA --pubsub MA --topic T [--echo-bytes N] [--chromium PATH]
import { build } from 'esbuild'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
const o = { echoBytes: 262144, chromium: '/usr/bin/chromium' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]; const v = argv[i + 1]
  if (k === '--ping') o.pingAddr = v
  else if (k === '--pubsub') o.pubsubAddr = v
  else if (k === '--topic') o.topic = v
  else if (k === '--echo-bytes') o.echoBytes = Number(v)
  else if (k === '--chromium') o.chromium = v
  else { console.log(`error usage: unknown option ${k}`); process.exit(2) }
}
const say = (line) => process.stdout.write(line + '\n')

const bundle = await build({
  entryPoints: [join(here, 'page.mjs')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
  logLevel: 'error',
  nodePaths: [join(here, '..', 'node_modules')]
})
const js = bundle.outputFiles[0].contents
const html = '<!doctype html><meta charset="utf-8"><title>cp2p browser test</title><script type="module" src="/page.js"></script>'
const server = createServer((req, res) => {
  if (req.url === '/page.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' })
    res.end(js)
  } else {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(html)
  }
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
say(`serving http://127.0.0.1:${server.address().port}/ (${js.length} bytes of js)`)

let code = 1
const browser = await chromium.launch({ executablePath: o.chromium, headless: true, args: ['--no-sandbox'] })
try {
  const page = await browser.newPage()
  page.on('pageerror', (err) => say(`page error ${err.message}`))
  await page.exposeFunction('say', say)
  await page.goto(`http://127.0.0.1:${server.address().port}/`)
  await page.waitForFunction(() => window.pageReady === true, null, { timeout: 30000 })
  say(`browser ${browser.version()}`)
  await page.evaluate((args) => window.runTest(args), o)
  code = 0
} catch (err) {
  say(`error ${err.message.split('\n')[0]}`)
} finally {
  await browser.close()
  server.close()
}
process.exit(code)
