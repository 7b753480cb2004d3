// The whole @libp2p/interop suite (connect, relay, DHT, pubsub, streams) in
// several pairings, and the rule cp2pd is held to: every case that passes with
// the real p2pd passes with cp2pd in its place.
//
//   CP2PD=... P2PD=... node --import ../polyfill.mjs run.mjs [pattern]
//
// PAIRINGS: space separated JS:GO pairs naming what the suite's "js" and "go"
//   daemons are (js, p2pd or cp2pd); default "js:p2pd js:cp2pd cp2pd:p2pd p2pd:cp2pd".
// JOBS: processes the cases are shared out to (default 4: the cases mostly wait).
// The argument, a regular expression, picks the cases whose names match it.
// MOCHA_REPORTER: the reporter (default dot; with JOBS>1 each job's goes to a log).
//
// A case is named by its titles with "js"/"go" replaced by what they stand for
// in its pairing. Pairings overlap (the suite runs both orders, so cp2pd:p2pd
// and p2pd:cp2pd give the same cross cases): each name runs once. Cases with no
// daemon (js with js) are not run. Every case naming cp2pd has a counterpart,
// the same name with p2pd in cp2pd's place, which is the baseline:
//   - counterpart passed: the cp2pd case must pass, unless it is known-missing
//     (known.mjs: features of later issues, not run and listed);
//   - counterpart failed or skipped: listed, whatever the cp2pd case did.
// Cases without cp2pd are the baseline; their failures are listed with the
// reason known.mjs gives. The exit code is 1 when the rule is broken.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Mocha from 'mocha'
import { IMPLS, makeFactory } from './factory.mjs'
import { baselineFails, missing } from './known.mjs'
import { pubsubCases } from './pubsub_cases.mjs'

const PAIRINGS = (process.env.PAIRINGS ?? 'js:p2pd js:cp2pd cp2pd:p2pd p2pd:cp2pd').trim().split(/\s+/).map((p) => {
  const [js, go] = p.split(':')
  if (!IMPLS.includes(js) || !IMPLS.includes(go)) {
    console.error(`PAIRINGS: ${p} is not JS:GO with each one of ${IMPLS.join(', ')}`)
    process.exit(2)
  }
  return { js, go }
})
const JOBS = Math.max(1, Number(process.env.JOBS ?? 4))
const SHARD = process.env.CP2P_SHARD // "i/n": this process is job i of n (set by the parent)
const GREP = process.argv[2] ?? ''
const grep = GREP ? new RegExp(GREP) : null // on case names
for (const [env, impl] of [['CP2PD', 'cp2pd'], ['P2PD', 'p2pd']]) {
  if (!process.env[env] && PAIRINGS.some((p) => p.js === impl || p.go === impl)) {
    console.error(`set ${env} to the ${impl} binary`)
    process.exit(2)
  }
}

const mocha = new Mocha({
  timeout: 30000,
  reporter: process.env.MOCHA_REPORTER ?? 'dot'
})
mocha.suite.emit('pre-require', globalThis, 'interop', mocha)
const interop = await import('@libp2p/interop')
for (const pairing of PAIRINGS) {
  const factory = makeFactory(pairing)
  describe(`[js=${pairing.js} go=${pairing.go}]`, function () {
    interop.connectInteropTests(factory)
    interop.relayInteropTests(factory)
    interop.dhtInteropTests(factory) // async only in name: it registers at once
    interop.pubsubInteropTests(factory)
    pubsubCases(factory)
    interop.streamInteropTests(factory)
  })
}

// ---- the plan: every leaf suite (one with tests) under its case names ----

const nameOf = (pairing, titles) =>
  titles.join(': ').replace(/\b(js|go)\b/g, (t) => pairing[t])
const daemonsIn = (name) => name.match(/\b(cp2pd|p2pd)\b/g) ?? []
const hasCp2pd = (name) => daemonsIn(name).includes('cp2pd')
const counterpart = (name) => name.replace(/\bcp2pd\b/g, 'p2pd')
const missingFor = (name) => hasCp2pd(name) ? missing.find((m) => m.match.test(name)) : undefined

function leaves (suite, titles, out) {
  const here = suite.title ? [...titles, suite.title] : titles
  if (suite.tests.length) out.push({ suite, titles: here })
  for (const s of suite.suites) leaves(s, here, out)
  return out
}
const all = []
for (const top of mocha.suite.suites) leaves(top, [], all)
const plan = [] // leaves to run
const results = new Map() // case name -> { state, error?, issue? }
const seen = new Set()
for (const leaf of all) {
  const pairing = PAIRINGS[mocha.suite.suites.indexOf(topOf(leaf.suite))]
  leaf.base = nameOf(pairing, leaf.titles.slice(1)) // without the pairing's own title
  leaf.names = leaf.suite.tests.map((t) => `${leaf.base}: ${nameOf(pairing, [t.title])}`)
  const key = leaf.names.join('\n')
  let keep = true
  if (seen.has(key)) keep = false // another pairing runs it
  else if (!daemonsIn(key).length) keep = false // js with js
  seen.add(key)
  if (keep && grep && !leaf.names.some((n) => grep.test(n))) keep = false
  const m = leaf.suite.isPending() ? undefined : missingFor(key) // the suite skips it itself
  if (keep && m) {
    for (const n of leaf.names) results.set(n, { state: 'missing', issue: m.issue, feature: m.feature })
    keep = false
  }
  if (keep) plan.push(leaf)
  else leaf.suite.parent.suites.splice(leaf.suite.parent.suites.indexOf(leaf.suite), 1)
}
function topOf (s) {
  while (s.parent && s.parent !== mocha.suite) s = s.parent
  return s
}
// one job's share: every n-th leaf, so each job gets some of every kind
if (SHARD) {
  const [i, n] = SHARD.split('/').map(Number)
  plan.forEach((leaf, k) => {
    if (k % n !== i) leaf.suite.parent.suites.splice(leaf.suite.parent.suites.indexOf(leaf.suite), 1)
  })
  for (let k = plan.length - 1; k >= 0; k--) if (k % n !== i) plan.splice(k, 1)
}

// ---- running: in this process, or shared out to JOBS children ----

async function runHere () {
  const names = new Map()
  for (const leaf of plan) leaf.suite.tests.forEach((t, i) => names.set(t, leaf.names[i]))
  const set = (test, state, error) => {
    const n = names.get(test)
    if (n != null && (results.get(n)?.state !== 'failed')) results.set(n, { state, error })
  }
  const testsUnder = (s) => [...s.tests, ...s.suites.flatMap(testsUnder)]
  await new Promise((resolve) => {
    const runner = mocha.run(resolve)
    runner.on('pass', (t) => set(t, 'passed'))
    runner.on('pending', (t) => set(t, 'skipped'))
    runner.on('fail', (t, err) => {
      const msg = String(err?.message ?? err).split('\n')[0]
      if (t.type !== 'hook') return set(t, 'failed', msg)
      // a hook failed: its suite's tests that have no result did not run
      for (const u of testsUnder(t.parent)) {
        const n = names.get(u)
        if (n != null && (!results.has(n) || t.title.startsWith('"after'))) results.set(n, { state: 'failed', error: `${t.title}: ${msg}` })
      }
    })
  })
  for (const n of names.values()) if (!results.has(n)) results.set(n, { state: 'failed', error: 'did not run' })
}

async function runJobs () {
  const dir = mkdtempSync(join(tmpdir(), 'interop-'))
  const self = fileURLToPath(import.meta.url)
  const codes = await Promise.all(Array.from({ length: JOBS }, (_, i) => new Promise((resolve) => {
    const out = join(dir, `job${i}`)
    const child = spawn(process.execPath, [...process.execArgv, self, GREP], {
      env: { ...process.env, CP2P_SHARD: `${i}/${JOBS}`, CP2P_RESULTS: `${out}.json` },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let log = ''
    child.stdout.on('data', (d) => { log += d })
    child.stderr.on('data', (d) => { log += d })
    child.on('exit', (code) => {
      writeFileSync(`${out}.log`, log)
      resolve({ code, log, out })
    })
  })))
  for (const { code, log, out } of codes) {
    let got
    try {
      got = JSON.parse(readFileSync(`${out}.json`, 'utf8'))
    } catch {
      console.error(`a job exited with ${code} and no results:\n${log}`)
      rmSync(dir, { recursive: true, force: true })
      process.exit(1)
    }
    for (const [n, r] of got) if (r.state !== 'missing') results.set(n, r)
  }
  rmSync(dir, { recursive: true, force: true })
}

const t0 = Date.now()
if (SHARD || JOBS === 1) await runHere()
else await runJobs()
if (SHARD) {
  writeFileSync(process.env.CP2P_RESULTS, JSON.stringify([...results]))
  process.exit(0)
}

// ---- the report ----

const reasonFor = (name) => baselineFails.find((b) => b.match.test(name))?.reason
const counts = { passed: 0, failed: 0, skipped: 0, missing: 0 }
const broken = []; const asBaseline = []; const known = []; const baseline = []
for (const [name, r] of results) {
  counts[r.state]++
  if (!hasCp2pd(name)) {
    if (r.state !== 'passed') baseline.push(`${name}: ${r.state}${r.error ? ` (${r.error})` : ''} - ${reasonFor(name) ?? 'UNEXPLAINED: no reason in known.mjs'}`)
    continue
  }
  const c = results.get(counterpart(name))
  const why = `${name}: ${r.state}${r.error ? ` (${r.error})` : ''}`
  if (r.state === 'passed') continue
  if (r.state === 'missing') {
    known.push(`${name} [${r.issue}${c?.state === 'passed' ? `: ${r.feature}` : `; p2pd in its place: ${c?.state ?? 'not run'}`}]`)
  } else if (c?.state === 'passed' || (c == null && r.state === 'failed')) {
    // p2pd passes it, or no pairing here ran it: no baseline excuses a failure
    broken.push(c ? why : `${why} (p2pd in its place: not run in these pairings)`)
  } else {
    asBaseline.push(`${why}, and p2pd in its place: ${c?.state ?? 'not run'}${reasonFor(counterpart(name)) ? ` - ${reasonFor(counterpart(name))}` : ''}`)
  }
}
const section = (title, lines) => {
  if (!lines.length) return
  console.log(`\n${title} (${lines.length}):`)
  for (const l of lines.sort()) console.log(`  ${l}`)
}
section('baseline: cases without cp2pd that did not pass', baseline)
section('known-missing in cp2pd: not run, for later issues', known)
section('cp2pd cases that do not pass where p2pd does not either', asBaseline)
section('FAIL: cp2pd cases that do not pass where p2pd does', broken)
console.log(`\npairings ${PAIRINGS.map((p) => `${p.js}:${p.go}`).join(' ')}: ${results.size} cases, ` +
  `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped, ${counts.missing} known-missing ` +
  `(${((Date.now() - t0) / 1000).toFixed(0)} s)`)
process.exitCode = broken.length ? 1 : 0
