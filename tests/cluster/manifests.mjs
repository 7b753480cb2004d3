// The Kubernetes manifests in deploy/ read the way the API server and the
// kubelet read them, for the tests:
//   node manifests.mjs validate [--dockerfile F] PATH...
//       every object against the Kubernetes API schema (kubernetes-models, made
//       from the official OpenAPI document), no field the schema lacks (what
//       kubectl's strict field validation refuses), and the pods they make
//       must resolve (volumes, ports, variables, commands the image has).
//   node manifests.mjs pods --dockerfile F [--rust] OUT PATH...
//       the pods they make, written under OUT for tests/cluster/run; with
//       --rust also the rust twins of some of them (rust.mjs), which
//       validate too when --rust is given to validate.
//   node manifests.mjs netpol PATH...
//       the NetworkPolicy of each StatefulSet's pods: its p2p port open to
//       all, every other port (metrics) only to the monitoring pods.
// A PATH is a YAML file, or a directory with a kustomization.yaml whose
// namespace, resources and replicas are applied; other kustomize features are
// refused rather than ignored.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as yaml from "js-yaml";
import { rustTwins } from "./rust.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const modelsDir = path.join(here, "node_modules", "kubernetes-models");

class ManifestError extends Error {}
const fail = (msg) => { throw new ManifestError(msg); };

// ---- reading ----

function loadFile(file) {
    const docs = yaml.loadAll(fs.readFileSync(file, "utf8"), null, { filename: file });
    return docs.filter((d) => d != null).map((obj) => ({ obj, file }));
}

const KUSTOMIZE_KEYS = new Set(["apiVersion", "kind", "namespace", "resources", "replicas"]);

function loadPath(p) {
    if (!fs.statSync(p).isDirectory())
        return loadFile(p);
    const kfile = path.join(p, "kustomization.yaml");
    const k = yaml.load(fs.readFileSync(kfile, "utf8"));
    for (const key of Object.keys(k))
        if (!KUSTOMIZE_KEYS.has(key))
            fail(`${kfile}: "${key}" is not understood by this test (only ${[...KUSTOMIZE_KEYS].join(", ")})`);
    if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
        fail(`${kfile}: not a kustomize.config.k8s.io/v1beta1 Kustomization`);
    const items = (k.resources || []).flatMap((r) => loadPath(path.join(p, r)));
    for (const { obj } of items) {
        if (k.namespace && obj.kind === "Namespace")
            obj.metadata.name = k.namespace;
        else if (k.namespace)
            obj.metadata.namespace = k.namespace;
    }
    for (const r of k.replicas || []) {
        const hit = items.filter(({ obj }) => obj.metadata?.name === r.name && obj.spec?.replicas !== undefined);
        if (!hit.length)
            fail(`${kfile}: replicas: no workload named ${r.name}`);
        for (const { obj } of hit)
            obj.spec.replicas = r.count;
    }
    return items;
}

// ---- the schema ----

async function modelFor(apiVersion, kind) {
    if (typeof apiVersion !== "string" || typeof kind !== "string")
        fail("apiVersion and kind are required");
    try {
        const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
        return mod[kind];
    } catch {
        fail(`${apiVersion} ${kind} is not a Kubernetes API type`);
    }
}

// The generated validators accept fields the schema does not name (the
// OpenAPI document does not forbid them); the API server's strict field
// validation refuses them. The models' declarations list every field, so the
// fields are checked against those.
const declCache = new Map();

function readDecl(file) {
    if (declCache.has(file))
        return declCache.get(file);
    const text = fs.readFileSync(file, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm))
        imports.set(m[1], m[2]);
    let decl = null;
    const start = text.search(/^export interface \w+/m);
    if (start >= 0) {
        const body = text.slice(start, text.indexOf("\n}", start));
        decl = { fields: new Map(), dir: path.dirname(file), imports };
        for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm))
            decl.fields.set(m[1], m[2].replace(/;$/, ""));
    }
    declCache.set(file, decl);
    return decl;
}

function declOfImport(decl, name) {
    const spec = decl.imports.get(name);
    if (!spec)
        return null;
    let file;
    if (spec.startsWith("."))
        file = path.resolve(decl.dir, spec.replace(/\.js$/, ".d.ts"));
    else {
        const parts = spec.split("/");
        const pkg = parts.slice(0, spec.startsWith("@") ? 2 : 1).join("/");
        file = path.join(here, "node_modules", pkg, parts.slice(pkg.split("/").length).join("/") + ".d.ts");
    }
    return fs.existsSync(file) ? readDecl(file) : null;
}

function checkFields(value, decl, where, errors) {
    if (!decl || value === null || typeof value !== "object" || Array.isArray(value))
        return;
    for (const [key, v] of Object.entries(value)) {
        const type = decl.fields.get(key);
        if (type === undefined) {
            errors.push(`${where}.${key}: unknown field`);
            continue;
        }
        const arr = /^Array<(\w+)>$/.exec(type);
        const one = /^(\w+)$/.exec(type);
        if (arr && Array.isArray(v))
            v.forEach((item, i) => checkFields(item, declOfImport(decl, arr[1]), `${where}.${key}[${i}]`, errors));
        else if (one)
            checkFields(v, declOfImport(decl, one[1]), `${where}.${key}`, errors);
    }
}

async function validateObject(obj) {
    const Model = await modelFor(obj.apiVersion, obj.kind);
    const errors = [];
    try {
        new Model(obj).validate();
    } catch (e) {
        errors.push(e.message);
    }
    checkFields(obj, readDecl(path.join(modelsDir, obj.apiVersion, `${obj.kind}.d.ts`)), obj.kind, errors);
    return errors;
}

// ---- the image, as deploy/Dockerfile makes it ----

function readDockerfile(file) {
    const lines = fs.readFileSync(file, "utf8").replace(/\\\n/g, " ").split("\n");
    const stages = [];
    for (const raw of lines) {
        const line = raw.trim();
        if (!line || line.startsWith("#"))
            continue;
        const [instr, ...words] = line.split(/\s+/);
        const arg = line.slice(instr.length).trim();
        if (instr.toUpperCase() === "FROM")
            stages.push({ copies: [], env: {}, entrypoint: null, cmd: null });
        const st = stages[stages.length - 1];
        switch (instr.toUpperCase()) {
        case "COPY": {
            const from = words.find((w) => w.startsWith("--from="))?.slice(7) ?? null;
            const paths = words.filter((w) => !w.startsWith("--"));
            const dst = paths.pop();
            for (const src of paths)
                st.copies.push({ from, src, dst: dst.endsWith("/") ? dst + path.basename(src) : dst });
            break;
        }
        case "ENV":
            for (const m of arg.matchAll(/(\w+)=("[^"]*"|\S+)/g))
                st.env[m[1]] = m[2].replace(/^"|"$/g, "");
            break;
        case "ENTRYPOINT":
            st.entrypoint = JSON.parse(arg);
            break;
        case "CMD":
            st.cmd = JSON.parse(arg);
            break;
        }
    }
    const img = stages[stages.length - 1];
    if (!img)
        fail(`${file}: no FROM`);
    // The programs the runtime stage copies from the build stage come from
    // the build tree (/src/build/X is the build directory's X), the other
    // files from the repository; anything else it copies from the build stage
    // (the package list) is consumed while the image is built.
    img.files = img.copies.filter((c) => !c.from || c.src.startsWith("/src/build/")).map((c) => ({
        src: c.from ? "build:" + c.src.slice("/src/build/".length) : "src:" + c.src,
        dst: c.dst,
    }));
    return img;
}

// ---- pods ----

// $(VAR) as the kubelet expands it: $$ is a literal $, unknown names stay.
function expand(s, env) {
    return String(s).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) =>
        m === "$$" ? "$" : env.has(name) ? env.get(name) : m);
}

const NODES = ["a", "b"];

function podsOf(items) {
    const services = new Set(items.filter(({ obj }) => obj.kind === "Service" && obj.spec?.clusterIP === "None")
        .map(({ obj }) => `${obj.metadata.namespace}/${obj.metadata.name}`));
    const pods = [];
    for (const { obj, file } of items) {
        if (obj.kind === "Pod") {
            pods.push({ file, name: obj.metadata.name, ns: obj.metadata.namespace || "default", spec: obj.spec,
                labels: obj.metadata.labels || {}, claims: {} });
        } else if (obj.kind === "StatefulSet") {
            const s = obj.spec;
            for (let i = 0; i < (s.replicas ?? 1); i++) {
                const name = `${obj.metadata.name}-${i}`;
                const claims = {};
                for (const t of s.volumeClaimTemplates || [])
                    claims[t.metadata.name] = `${t.metadata.name}-${name}`;
                pods.push({ file, name, ns: obj.metadata.namespace || "default", labels: s.template.metadata?.labels || {},
                    spec: { ...s.template.spec, hostname: name, subdomain: s.serviceName },
                    claims, ordinal: i, spread: !!s.template.spec.topologySpreadConstraints });
            }
        } else if (["Deployment", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)) {
            fail(`${file}: ${obj.kind} ${obj.metadata.name}: tests/cluster does not run ${obj.kind}s yet`);
        }
    }
    for (const p of pods) {
        const sel = p.spec.nodeSelector?.["cp2p-demo/node"];
        if (sel !== undefined && !NODES.includes(sel))
            fail(`${p.file}: pod ${p.name}: nodeSelector cp2p-demo/node must be a or b`);
        // The two nodes of the demo; a spread StatefulSet alternates.
        p.node = sel ?? (p.spread ? NODES[p.ordinal % NODES.length] : fail(`${p.file}: pod ${p.name}: no nodeSelector cp2p-demo/node and no spread: cannot place it`));
        p.fqdn = p.spec.hostname && p.spec.subdomain && services.has(`${p.ns}/${p.spec.subdomain}`)
            ? `${p.spec.hostname}.${p.spec.subdomain}.${p.ns}.svc.cluster.local` : "";
    }
    return pods;
}

function fieldRef(p, fieldPath) {
    switch (fieldPath) {
    case "metadata.name": return p.name;
    case "metadata.namespace": return p.ns;
    case "spec.nodeName": return `node-${p.node}`;
    default: return fail(`${p.file}: pod ${p.name}: fieldRef ${fieldPath} is not supported by tests/cluster`);
    }
}

function containerOf(p, c, image) {
    const where = `${p.file}: pod ${p.name} container ${c.name}`;
    const env = new Map(Object.entries(image.env));
    env.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    env.set("HOSTNAME", p.spec.hostNetwork ? `node-${p.node}` : p.name);
    for (const e of c.env || []) {
        if (e.valueFrom?.fieldRef)
            env.set(e.name, fieldRef(p, e.valueFrom.fieldRef.fieldPath));
        else if (e.valueFrom)
            fail(`${where}: env ${e.name}: only value and fieldRef are supported`);
        else
            env.set(e.name, expand(e.value ?? "", env));
    }
    if (c.envFrom)
        fail(`${where}: envFrom is not supported`);
    // The image's ENTRYPOINT and CMD stand in for what the pod leaves out.
    const command = c.command ?? image.entrypoint ?? [];
    const args = c.args ?? (c.command ? [] : image.cmd ?? []);
    const argv = [...command, ...args].map((s) => expand(s, env));
    if (!argv.length)
        fail(`${where}: nothing to run`);
    const cmd0 = argv[0];
    const files = image.files.map((f) => f.dst);
    if (cmd0.startsWith("/") ? !files.includes(cmd0) : !files.some((f) => path.basename(f) === cmd0))
        fail(`${where}: ${cmd0} is not in the image (deploy/Dockerfile copies ${files.join(", ")})`);
    const mounts = (c.volumeMounts || []).map((m) => {
        const v = (p.spec.volumes || []).find((x) => x.name === m.name);
        if (v?.emptyDir)
            return `emptyDir:${m.name}:${m.mountPath}`;
        if (v?.persistentVolumeClaim)
            return `pvc:${v.persistentVolumeClaim.claimName}:${m.mountPath}`;
        if (!v && p.claims[m.name])
            return `pvc:${p.claims[m.name]}:${m.mountPath}`;
        return fail(`${where}: volume ${m.name}: only emptyDir and persistent volume claims are supported`);
    });
    const ports = new Map((c.ports || []).map((x) => [x.name, x.containerPort]));
    const portOf = (x) => (typeof x === "number" ? x : ports.get(x) ?? fail(`${where}: no port named ${x}`));
    const probe = c.readinessProbe;
    let ready = "none";
    if (probe?.httpGet)
        ready = `http ${portOf(probe.httpGet.port)} ${probe.httpGet.path || "/"}`;
    else if (probe?.tcpSocket)
        ready = `tcp ${portOf(probe.tcpSocket.port)}`;
    for (const pr of [c.livenessProbe, c.startupProbe])
        if (pr?.httpGet)
            portOf(pr.httpGet.port);
    const sc = { ...(p.spec.securityContext || {}), ...(c.securityContext || {}) };
    if (sc.runAsUser === undefined || sc.runAsUser === 0)
        fail(`${where}: runAsUser must be set and not 0 (the image runs as a non-root user)`);
    return { name: c.name, argv, env, mounts, ready, uid: sc.runAsUser, gid: sc.runAsGroup ?? sc.runAsUser,
        fsGroup: p.spec.securityContext?.fsGroup ?? "", stdin: !!c.stdin };
}

const q = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

function writePods(out, pods, image, rustImage) {
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, "image.files"), image.files.map((f) => `${f.src}\t${f.dst}\n`).join(""));
    if (rustImage)
        fs.writeFileSync(path.join(out, "image-rust.files"), rustImage.files.map((f) => `${f.src}\t${f.dst}\n`).join(""));
    fs.writeFileSync(path.join(out, "pods.list"), pods.map((p) => p.name + "\n").join(""));
    for (const p of pods) {
        const dir = path.join(out, p.name);
        fs.mkdirSync(dir, { recursive: true });
        const cs = p.containers;
        fs.writeFileSync(path.join(dir, "pod.sh"), [
            `POD_NS=${q(p.ns)}`, `POD_NODE=${q(p.node)}`, `POD_HOSTNET=${p.spec.hostNetwork ? 1 : 0}`,
            `POD_FQDN=${q(p.fqdn)}`, `POD_RESTART=${q(p.spec.restartPolicy || "Always")}`,
            `POD_CONTAINERS=(${cs.map((c) => q(c.name)).join(" ")})`, ""].join("\n"));
        for (const c of cs) {
            fs.writeFileSync(path.join(dir, `${c.name}.argv`), c.argv.map((a) => a + "\0").join(""));
            fs.writeFileSync(path.join(dir, `${c.name}.env`), [...c.env].map(([k, v]) => `${k}=${v}\0`).join(""));
            fs.writeFileSync(path.join(dir, `${c.name}.sh`), [
                `C_IMAGE=${p.image ? "rust" : "cp2p"}`, `C_STDIN=${c.stdin ? 1 : 0}`,
                `C_UID=${c.uid}`, `C_GID=${c.gid}`, `C_FSGROUP=${q(c.fsGroup)}`, `C_READY=${q(c.ready)}`,
                `C_MOUNTS=(${c.mounts.map(q).join(" ")})`, ""].join("\n"));
        }
    }
}

// ---- network policies ----

// Who may scrape: the pods named prometheus in the namespace named monitoring
// (deploy/README.md says so; the API server sets kubernetes.io/metadata.name).
const MONITORING = {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
    podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
};

function selects(sel, labels, where) {
    if (sel?.matchExpressions)
        fail(`${where}: matchExpressions are not understood by this test`);
    return !!sel && Object.entries(sel.matchLabels || {}).every(([k, v]) => labels[k] === v);
}

// The same value, whatever order the keys are written in.
const sorted = (x) => (x && typeof x === "object" && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sorted(x[k])])) : x);
const sameJson = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

// The peers the policies let reach a container port: "all", or a list.
function allowedFrom(policies, port) {
    const peers = [];
    for (const { obj: p } of policies) {
        for (const rule of p.spec.ingress || []) {
            const hit = !rule.ports?.length || rule.ports.some((rp) => (rp.protocol || "TCP") === (port.protocol || "TCP") &&
                (rp.port === undefined || rp.port === port.name || rp.port === port.containerPort ||
                 (rp.endPort !== undefined && port.containerPort >= rp.port && port.containerPort <= rp.endPort)));
            if (!hit)
                continue;
            if (!rule.from?.length)
                return "all";
            peers.push(...rule.from);
        }
    }
    return peers;
}

function checkPolicies(items) {
    const policies = items.filter(({ obj }) => obj.kind === "NetworkPolicy");
    const sets = items.filter(({ obj }) => obj.kind === "StatefulSet");
    if (!sets.length)
        fail("no StatefulSet to check the policies of");
    for (const { obj: s, file } of sets) {
        const where = `${file}: StatefulSet ${s.metadata.name}`;
        const ns = s.metadata.namespace || "default";
        const labels = s.spec.template.metadata?.labels || {};
        const mine = policies.filter(({ obj: p, file: pf }) => (p.metadata.namespace || "default") === ns &&
            (p.spec.policyTypes || ["Ingress"]).includes("Ingress") &&
            selects(p.spec.podSelector, labels, `${pf}: NetworkPolicy ${p.metadata.name}`));
        if (!mine.length)
            fail(`${where}: no NetworkPolicy selects its pods for ingress (all ports open to all)`);
        for (const c of s.spec.template.spec.containers) {
            for (const port of c.ports || []) {
                const from = allowedFrom(mine, port);
                const what = `${where}: port ${port.name || port.containerPort}`;
                if (port.name === "p2p") {
                    if (from !== "all")
                        fail(`${what}: the libp2p port must be open to all`);
                    console.log(`ok ${what}: open to all`);
                    continue;
                }
                if (from === "all")
                    fail(`${what}: open to all, not only to the monitoring`);
                const stray = from.find((peer) => !sameJson(peer, MONITORING));
                if (stray)
                    fail(`${what}: reachable from ${JSON.stringify(stray)}, not only from ${JSON.stringify(MONITORING)}`);
                console.log(`ok ${what}: ${from.length ? "only from the monitoring" : "closed"}`);
            }
        }
    }
}

async function main(argv) {
    const cmd = argv.shift();
    let dockerfile = null, rust = false;
    if (argv[0] === "--dockerfile") {
        argv.shift();
        dockerfile = argv.shift();
    }
    if (argv[0] === "--rust") {
        argv.shift();
        rust = true;
    }
    const out = cmd === "pods" ? argv.shift() : null;
    if (!["validate", "pods", "netpol"].includes(cmd) || !argv.length || (cmd === "pods" && !dockerfile))
        fail("usage: manifests.mjs validate [--dockerfile F] [--rust] PATH... | pods --dockerfile F [--rust] OUT PATH... | netpol PATH...");
    const items = argv.flatMap(loadPath);
    if (cmd === "netpol") {
        checkPolicies(items);
        return 0;
    }
    let bad = 0;
    if (cmd === "validate") {
        for (const { obj, file } of items) {
            const errors = await validateObject(obj);
            const name = `${file}: ${obj.kind} ${obj.metadata?.namespace ? obj.metadata.namespace + "/" : ""}${obj.metadata?.name}`;
            if (errors.length) {
                bad++;
                for (const e of errors)
                    console.log(`FAIL ${name}: ${e}`);
            } else {
                console.log(`ok ${name}`);
            }
        }
    }
    const image = dockerfile ? readDockerfile(dockerfile) : { env: {}, entrypoint: null, cmd: null, files: null };
    const pods = podsOf(items);
    if (rust) {
        for (const { obj, pod } of rustTwins(pods, fail)) {
            const errors = await validateObject(obj);
            const name = `rust twin: Pod ${obj.metadata.namespace}/${obj.metadata.name}`;
            for (const e of errors)
                console.log(`FAIL ${name}: ${e}`);
            if (cmd === "validate" && !errors.length)
                console.log(`ok ${name}`);
            if (errors.length)
                bad++;
            pods.push(pod);
        }
    }
    for (const p of pods) {
        if (image.files)
            p.containers = p.spec.containers.map((c) => containerOf(p, c, p.image ?? image));
        if (p.spec.initContainers)
            fail(`${p.file}: pod ${p.name}: initContainers are not supported by tests/cluster`);
    }
    if (cmd === "pods" && !bad)
        writePods(out, pods, image, rust ? pods.find((p) => p.image)?.image : null);
    else
        console.log(`${items.length - bad} objects valid, ${bad} invalid; ${pods.length} pods resolve`);
    return bad ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
    console.error(e instanceof ManifestError ? `manifests: ${e.message}` : e);
    process.exit(1);
});
