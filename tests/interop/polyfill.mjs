// Node 20 lacks Promise.withResolvers, which js-libp2p 3 uses; load with `node --import ./polyfill.mjs`.
if (typeof Promise.withResolvers !== 'function') Promise.withResolvers = function () { let resolve, reject; const promise = new Promise((a, b) => { resolve = a; reject = b }); return { promise, resolve, reject } }
// Node 20 has no global WebSocket either (22 has), which @libp2p/websockets dials with.
if (typeof globalThis.WebSocket !== 'function') globalThis.WebSocket = (await import('ws')).WebSocket
