// The rust pods of tests/cluster/run: twins of some pods of deploy/kubernetes
// that run the rust-libp2p demo (tests/interop/rust/src/bin/demo.rs: the
// original demo's three apps, with cp2p's options and output lines) in an
// image of its own, beside the cp2p pods, so that each scenario is played
// across the two implementations. A twin is its pod's manifest with the
// container translated, never written by hand:
//   - `cp2p ping|mdns ARGS` becomes `demo ping|mdns ARGS`: the demo takes
//     the same options, but --metrics (it serves no HTTP);
//   - the StatefulSet's `cp2p-entrypoint cp2pd FLAGS` becomes `demo dht`:
//     -id is --key (made on first start, kept on the pod's volume, as the
//     entrypoint does), -hostAddrs --listen, each CP2P_BOOTSTRAP address a
//     --bootstrap (the demo dials a name to learn its peer ID, as the
//     entrypoint does); -dhtDatastore goes (records in memory), and so do the
//     control socket (-listen: commands come on stdin, `stdin: true`, as
//     `kubectl attach -i` writes them) and -metricsAddr; -dht and
//     -dhtOpenKeys are what the demo does anyway;
//   - HTTP probes (on the metrics port) become TCP probes on the libp2p port,
//     or go where there is none; the metrics ports go.
// A flag the translation does not know fails, so a changed manifest cannot
// slip past it. Each twin is a Pod that must validate like the manifests.

export const RUST_IMAGE = {
    env: {},
    entrypoint: null,
    cmd: null,
    files: [{ src: "rust:demo", dst: "/usr/local/bin/demo" }],
};
const DEMO = "/usr/local/bin/demo";

// Which pods get a twin, its name, and where it runs (default: its pod's node).
const TWINS = [
    // Scenario 1: rust serves ping beside ping-server (node a), and pings
    // ping-server (cp2p) from node b as ping-client does.
    { of: "ping-server", name: "rust-ping-server" },
    { of: "ping-client", name: "rust-ping-client" },
    // Scenario 2: a rust pod on node a's pod network, beside mdns-a.
    { of: "mdns-a", name: "mdns-rust-a", container: "one" },
    // Scenario 3: a DHT peer of the StatefulSet's, on node b.
    { of: "cp2p-1", name: "rust-dht-0", node: "b" },
];

const CP2PD_VALUE_FLAGS = new Set(["id", "hostAddrs", "bootstrapPeers", "dhtDatastore", "listen", "metricsAddr"]);
const CP2PD_BOOL_FLAGS = new Set(["dht", "dhtOpenKeys", "b", "q"]);

function fromCp2pd(args, c, where, fail) {
    const out = ["dht"];
    for (let i = 0; i < args.length; i++) {
        const name = args[i].replace(/^--?/, "");
        if (CP2PD_BOOL_FLAGS.has(name))
            continue;
        if (!CP2PD_VALUE_FLAGS.has(name) || i + 1 >= args.length)
            fail(`${where}: cp2pd flag ${args[i]}: the rust translation does not know it`);
        const v = args[++i];
        if (name === "id")
            out.push("--key", v);
        else if (name === "hostAddrs")
            for (const a of v.split(","))
                out.push("--listen", a);
        else if (name === "bootstrapPeers")
            for (const a of v.split(","))
                out.push("--bootstrap", a);
    }
    const boot = (c.env || []).find((e) => e.name === "CP2P_BOOTSTRAP");
    if (boot?.valueFrom)
        fail(`${where}: CP2P_BOOTSTRAP from ${Object.keys(boot.valueFrom)[0]}: the rust translation takes a value`);
    for (const a of (boot?.value || "").split(",").filter(Boolean))
        out.push("--bootstrap", a);
    out.push("--serve");
    return out;
}

function translate(c, where, fail) {
    const argv = [...(c.command || []), ...(c.args || [])];
    let args;
    if (argv[0] === "/usr/local/bin/cp2p" && ["ping", "mdns"].includes(argv[1])) {
        args = [];
        for (let i = 1; i < argv.length; i++) {
            if (argv[i] === "--metrics")
                i++;
            else
                args.push(argv[i]);
        }
    } else if (argv[0] === "/usr/local/bin/cp2p-entrypoint" && argv[1] === "cp2pd") {
        args = fromCp2pd(argv.slice(2), c, where, fail);
    } else {
        fail(`${where}: ${argv.slice(0, 2).join(" ")}: the rust translation knows cp2p ping, cp2p mdns and cp2p-entrypoint cp2pd`);
    }
    const t = structuredClone(c);
    t.name = "rust";
    t.image = "cp2p-demo-rust:0.1.0";
    t.command = [DEMO];
    t.args = args;
    if (args[0] === "dht") {
        t.stdin = true;
        t.env = (t.env || []).filter((e) => !["CP2P_BOOTSTRAP", "CP2P_BOOTSTRAP_WAIT"].includes(e.name));
    }
    const p2p = (c.ports || []).find((p) => p.name === "p2p");
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        if (!t[probe]?.httpGet)
            continue;
        if (p2p) {
            delete t[probe].httpGet;
            t[probe].tcpSocket = { port: "p2p" };
        } else {
            delete t[probe];
        }
    }
    t.ports = (t.ports || []).filter((p) => !String(p.name || "").startsWith("metrics"));
    if (!t.ports.length)
        delete t.ports;
    return t;
}

// The twins of pods (as manifests.mjs's podsOf makes them): pods of their
// own, and each as a Pod object to validate.
export function rustTwins(pods, fail) {
    const twins = [];
    for (const tw of TWINS) {
        const p = pods.find((x) => x.name === tw.of);
        if (!p)
            fail(`rust twin ${tw.name}: no pod ${tw.of} in the manifests`);
        const where = `${p.file}: pod ${p.name} (rust twin ${tw.name})`;
        const c = tw.container ? p.spec.containers.find((x) => x.name === tw.container) : p.spec.containers[0];
        if (!c || (!tw.container && p.spec.containers.length !== 1))
            fail(`${where}: which container to translate?`);
        const spec = structuredClone(p.spec);
        spec.containers = [translate(c, where, fail)];
        if (spec.hostname)
            spec.hostname = tw.name;
        if (tw.node)
            spec.nodeSelector = { ...(spec.nodeSelector || {}), "cp2p-demo/node": tw.node };
        delete spec.topologySpreadConstraints;
        // A StatefulSet's claims become the twin's own claims, by name.
        const claims = {};
        for (const [vol, claim] of Object.entries(p.claims)) {
            claims[vol] = claim.replace(new RegExp(`-${p.name}$`), `-${tw.name}`);
            spec.volumes = [...(spec.volumes || []), { name: vol, persistentVolumeClaim: { claimName: claims[vol] } }];
        }
        // Its pod's labels: the Services that give it a name select it too.
        const labels = { ...p.labels, "cp2p-demo/implementation": "rust" };
        const obj = { apiVersion: "v1", kind: "Pod", metadata: { name: tw.name, namespace: p.ns, labels }, spec };
        twins.push({
            obj,
            pod: {
                ...p, name: tw.name, spec, labels, claims: {}, image: RUST_IMAGE, node: tw.node ?? p.node,
                fqdn: p.fqdn ? p.fqdn.replace(/^[^.]+/, tw.name) : "",
            },
        });
    }
    return twins;
}
