// bench/run's table: reads the run's result lines ({"workload","impl","result"})
// and prints bench/RESULTS.md: figures, ratios, and the issue's targets.
//   node report.mjs RESULTS.jsonl BYTES CONNS PARALLEL STREAMS
import { readFileSync } from 'node:fs'
import os from 'node:os'

const [file, bytes, conns, parallel, streams] = process.argv.slice(2)
const rows = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
const get = (w, impl) => rows.find((r) => r.workload === w && r.impl === impl)?.result

const gbps = (r) => {
  if (!r) return null
  const b = r.bytes ?? (r.uploadBytes + r.downloadBytes)
  return b / r.timeSeconds / 1e9
}
// A transfer is run several times: the median of its runs (the machine is shared).
const tput = (w, impl) => {
  const v = rows.filter((r) => r.workload === w && r.impl === impl && r.result).map((r) => gbps(r.result)).sort((a, b) => a - b)
  return v.length ? v[(v.length - 1) >> 1] : null
}
const runs = Math.max(...['raw', 'cp2p', 'js'].map((i) => rows.filter((r) => r.workload === 'up' && r.impl === i).length))
const f = (x, d = 2) => (x == null || !Number.isFinite(x) ? 'n/a' : x.toFixed(d))
const ratio = (a, b) => (a == null || b == null || !b ? 'n/a' : (a / b).toFixed(2))
const out = []
const p = (s = '') => out.push(s)

p('# cp2p benchmarks')
p()
p(`Run by \`bench/run\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}), Linux ${os.release()}, node ${process.version}; loopback only; everything below in one run.`)
p(`Transfers: ${bytes} bytes; 16 streams share that size on one connection (iperf3: 16 TCP connections, -n ${bytes}). Each transfer ran ${runs} times; the table shows the median. Throughput counts the time from before the connection is made (the perf runner's rule), iperf3 its own. GB/s = 10^9 bytes/s.`)
p()
p('## Throughput (GB/s)')
p()
p('| workload | raw TCP (iperf3) | cp2p | js-libp2p | cp2p / raw | cp2p / js |')
p('|---|---|---|---|---|---|')
for (const [w, name] of [['up', 'one stream, upload'], ['down', 'one stream, download'], ['streams16', '16 concurrent streams, download'],
  ['ws-up', 'WebSocket (/ws), one stream, upload'], ['ws-down', 'WebSocket (/ws), one stream, download']]) {
  const raw = tput(w.replace(/^ws-/, ''), 'raw') // a websocket rides the same TCP
  const c = tput(w, 'cp2p')
  const j = tput(w, 'js')
  p(`| ${name} | ${f(raw)} | ${f(c)} | ${f(j)} | ${ratio(c, raw)} | ${ratio(c, j)} |`)
}
p()
p(`## Connections: TCP + Noise + Yamux, then a 1-byte /perf/1.0.0 exchange, then close (${conns} connections, ${parallel} dialers; both ends on this machine)`)
p()
p('| | new connections / s | time to first byte p50 (ms) | p99 (ms) |')
p('|---|---|---|---|')
for (const impl of ['cp2p', 'js']) {
  const r = get('conns', impl)
  p(`| ${impl === 'js' ? 'js-libp2p' : impl} | ${f(r?.perSecond, 0)} | ${f(r?.ttfbMs?.p50)} | ${f(r?.ttfbMs?.p99)} |`)
}
p(`| cp2p / js | ${ratio(get('conns', 'cp2p')?.perSecond, get('conns', 'js')?.perSecond)} | | |`)
p()
p(`## Memory (KiB of server resident set; ${streams} idle streams on one connection)`)
p()
p('| server | per idle connection (1,000) | per idle connection (10,000) | per idle stream | cp2p client per connection (10,000) |')
p('|---|---|---|---|---|')
for (const impl of ['cp2p', 'js']) {
  const a = get('idle1000', impl)
  const b = get('idle10000', impl)
  p(`| ${impl === 'js' ? 'js-libp2p' : impl} | ${f(a?.serverKiBPerConn, 1)} | ${f(b?.serverKiBPerConn, 1)} | ${f((b ?? a)?.serverKiBPerStream, 2)} | ${f(b?.clientKiBPerConn, 1)} |`)
}
p()
p('## Kademlia lookups (random keys, FIND_NODE to the end, 4 at a time, in a local network of in-process nodes)')
p()
p('| | nodes | lookups / s | failed |')
p('|---|---|---|---|')
for (const impl of ['cp2p', 'js']) {
  const r = get('dht', impl)
  p(`| ${impl === 'js' ? 'js-libp2p' : impl} | ${r?.nodes ?? 'n/a'} | ${f(r?.perSecond, 1)} | ${r?.failed ?? 'n/a'} |`)
}
p()
p(`## Pubsub (gossipsub, ${get('pubsub', 'cp2p')?.nodes ?? 'n/a'} nodes in one process, random topology of degree 6, signed messages)`)
p()
p('| | messages / s delivered to every node (1000 / s offered) | latency p50 / p99 at that load | latency p50 / p99 at 20 / s | delivered |')
p('|---|---|---|---|---|')
for (const impl of ['cp2p', 'js']) {
  const r = get('pubsub', impl)
  const l = get('pubsublat', impl)
  p(`| ${impl === 'js' ? 'js-libp2p' : impl} | ${f(r?.perSecond, 0)} | ${f(r?.p50Ms, 0)} / ${f(r?.p99Ms, 0)} ms | ${f(l?.p50Ms, 1)} / ${f(l?.p99Ms, 1)} ms | ${r ? `${r.delivered} of ${r.expected}` : 'n/a'} |`)
}
p()
const up = tput('up', 'cp2p')
const down = tput('down', 'cp2p')
const one = up != null && down != null ? Math.min(up, down) : null
const rawOne = Math.min(tput('up', 'raw') ?? Infinity, tput('down', 'raw') ?? Infinity)
const jsOne = Math.max(tput('up', 'js') ?? 0, tput('down', 'js') ?? 0)
const idle = get('idle10000', 'cp2p') ?? get('idle1000', 'cp2p')
const mark = (ok) => (ok ? 'met' : 'not met')
p('## Targets (issue: performance)')
p()
p('| target | measured | |')
p('|---|---|---|')
p(`| one stream >= 0.6 x raw TCP | ${ratio(one, rawOne)} | ${mark(one / rawOne >= 0.6)} |`)
p(`| one stream >= 5 x js-libp2p | ${ratio(one, jsOne)} | ${mark(one / jsOne >= 5)} |`)
p(`| >= 3,000 new connections / s | ${f(get('conns', 'cp2p')?.perSecond, 0)} | ${mark(get('conns', 'cp2p')?.perSecond >= 3000)} |`)
p(`| <= 16 KiB per idle connection | ${f(idle?.serverKiBPerConn, 1)} | ${mark(idle?.serverKiBPerConn <= 16)} |`)
p()
p('One-stream figures take the slower of upload and download for cp2p and raw TCP, and the faster for js-libp2p. Timing never fails a build.')
process.stdout.write(out.join('\n') + '\n')
