// deploy/kubernetes/*.yaml: every manifest is well-formed, pinned, bounded, probed, free of secret
// values, and the agent's pgwarden.yaml is a valid configuration.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseConfig } from '../agent/config.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../deploy/kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are untyped
type Doc = Record<string, any>;
// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are untyped
type Container = Record<string, any>;

interface Manifest {
  file: string;
  doc: Doc;
}

function load(): Manifest[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  const out: Manifest[] = [];
  for (const file of files) {
    for (const d of YAML.parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${file}: YAML errors`);
      const doc = d.toJS() as Doc | null;
      if (doc) out.push({ file, doc });
    }
  }
  return out;
}

const manifests = load();

function where(m: Manifest): string {
  return `${m.file}: ${m.doc.kind}/${m.doc.metadata?.name}`;
}

function find(kind: string, name: string): Doc {
  const m = manifests.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  assert.ok(m, `no ${kind}/${name} in deploy/kubernetes`);
  return m.doc;
}

function containersOf(doc: Doc): Container[] {
  const spec = doc.spec?.template?.spec;
  if (!spec) return [];
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

const workloads = manifests.filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.doc.kind));

describe('deploy/kubernetes manifests', () => {
  it('has the agent, PgBouncer and the optional ServiceMonitor', () => {
    assert.ok(manifests.length >= 7);
    for (const [kind, name] of [
      ['Deployment', 'pgwarden'],
      ['Service', 'pgwarden'],
      ['ConfigMap', 'pgwarden-config'],
      ['ServiceMonitor', 'pgwarden'],
      ['Deployment', 'pgbouncer'],
      ['Service', 'pgbouncer'],
      ['ConfigMap', 'pgbouncer-config'],
    ] as const) {
      find(kind, name);
    }
  });

  it('every document has apiVersion, kind, metadata.name and the vitalstream namespace', () => {
    for (const m of manifests) {
      assert.equal(typeof m.doc.apiVersion, 'string', `${m.file}: apiVersion`);
      assert.equal(typeof m.doc.kind, 'string', `${m.file}: kind`);
      assert.equal(typeof m.doc.metadata?.name, 'string', `${m.file}: metadata.name`);
      assert.equal(m.doc.metadata?.namespace, 'vitalstream', `${where(m)}: metadata.namespace`);
    }
  });

  it('the ServiceMonitor is alone in its own file', () => {
    const sm = manifests.filter((m) => m.doc.kind === 'ServiceMonitor');
    assert.equal(sm[0]?.doc.apiVersion, 'monitoring.coreos.com/v1');
    for (const m of sm) {
      assert.ok(
        manifests.filter((x) => x.file === m.file).every((x) => x.doc.kind === 'ServiceMonitor'),
        `${m.file} mixes the ServiceMonitor with other kinds`,
      );
    }
  });

  it('every image is pinned: a tag present, never latest', () => {
    assert.ok(workloads.length >= 2);
    for (const m of workloads) {
      for (const c of containersOf(m.doc)) {
        const image = String(c.image ?? '');
        const lastSegment = image.split('/').pop() ?? '';
        const tag = image.includes('@') ? 'digest' : lastSegment.split(':')[1];
        assert.ok(tag, `${where(m)}: ${c.name} image ${image} has no tag`);
        assert.notEqual(tag, 'latest', `${where(m)}: ${c.name} image ${image} uses latest`);
      }
    }
    assert.equal(containersOf(find('Deployment', 'pgwarden'))[0]?.image, 'ghcr.io/pgwarden/pgwarden:0.1.0');
  });

  it('every container has cpu and memory requests and limits, and a locked-down securityContext', () => {
    for (const m of workloads) {
      for (const c of containersOf(m.doc)) {
        for (const bound of ['requests', 'limits']) {
          for (const res of ['cpu', 'memory']) {
            assert.ok(c.resources?.[bound]?.[res], `${where(m)}: ${c.name} resources.${bound}.${res}`);
          }
        }
        const sc = c.securityContext ?? {};
        assert.equal(sc.runAsNonRoot, true, `${where(m)}: ${c.name} runAsNonRoot`);
        assert.equal(sc.readOnlyRootFilesystem, true, `${where(m)}: ${c.name} readOnlyRootFilesystem`);
        assert.equal(sc.allowPrivilegeEscalation, false, `${where(m)}: ${c.name} allowPrivilegeEscalation`);
        assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where(m)}: ${c.name} capabilities.drop`);
      }
    }
  });

  it('the agent: command, port 9187 named http, probes on /healthz, a writable store', () => {
    const deployment = find('Deployment', 'pgwarden');
    assert.equal(deployment.spec.replicas, 2);
    const [agent] = containersOf(deployment);
    assert.ok(agent);
    assert.deepEqual(agent.command, ['pgwarden', 'watch', '--config', '/etc/pgwarden/pgwarden.yaml']);
    const http = (agent.ports ?? []).find((p: Doc) => p.name === 'http');
    assert.equal(http?.containerPort, 9187);
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const get: Doc | undefined = agent[probe]?.httpGet;
      assert.equal(get?.path, '/healthz', `${probe} path`);
      assert.ok(get?.port === 'http' || get?.port === 9187, `${probe} port`);
    }
    const store = (agent.volumeMounts ?? []).find((v: Doc) => v.mountPath === '/var/lib/pgwarden');
    assert.ok(store, 'nothing mounted at /var/lib/pgwarden');
    assert.notEqual(store.readOnly, true);
    const volume = deployment.spec.template.spec.volumes.find((v: Doc) => v.name === store.name);
    assert.ok(volume?.emptyDir || volume?.persistentVolumeClaim, 'the store is an emptyDir or a PVC');
  });

  it('the agent takes DATABASE_URL, PGWARDEN_TOKEN, SLACK_WEBHOOK_URL, PGWARDEN_WEBHOOK_SECRET from pgwarden-secrets', () => {
    const [agent] = containersOf(find('Deployment', 'pgwarden'));
    for (const key of ['DATABASE_URL', 'PGWARDEN_TOKEN', 'SLACK_WEBHOOK_URL', 'PGWARDEN_WEBHOOK_SECRET']) {
      const env = (agent?.env ?? []).find((e: Doc) => e.name === key);
      assert.deepEqual(env?.valueFrom?.secretKeyRef, { name: 'pgwarden-secrets', key }, key);
    }
  });

  it('PgBouncer: probes on 6432, pgbouncer.ini from a ConfigMap and userlist.txt from a Secret', () => {
    const deployment = find('Deployment', 'pgbouncer');
    const [bouncer] = containersOf(deployment);
    assert.ok(bouncer);
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      assert.equal(bouncer[probe]?.tcpSocket?.port, 6432, probe);
    }
    const sources = deployment.spec.template.spec.volumes.flatMap((v: Doc) => [
      v,
      ...(v.projected?.sources ?? []),
    ]);
    assert.ok(sources.some((s: Doc) => s.configMap?.name === 'pgbouncer-config'));
    assert.ok(sources.some((s: Doc) => s.secret?.name && s.secret.items?.[0]?.key === 'userlist.txt'));
    const ini = find('ConfigMap', 'pgbouncer-config').data['pgbouncer.ini'] as string;
    assert.equal(
      ini,
      readFileSync(path.join(dir, 'pgbouncer.ini'), 'utf8'),
      'the ConfigMap matches pgbouncer.ini',
    );
    assert.match(ini, /^pool_mode = transaction$/m);
    assert.match(ini, /^listen_port = 6432$/m);
    assert.match(ini, /^auth_file = \/etc\/pgbouncer\/userlist\.txt$/m);
    assert.doesNotMatch(ini, /password\s*=/i);
  });

  it('no literal secret values: env named like a secret only comes from a secretKeyRef', () => {
    const secretish = /PASSWORD|TOKEN|SECRET|URL/i;
    for (const m of workloads) {
      for (const c of containersOf(m.doc)) {
        for (const e of c.env ?? []) {
          if (!secretish.test(e.name)) continue;
          assert.equal(e.value, undefined, `${where(m)}: ${c.name} env ${e.name} has a literal value`);
          assert.ok(e.valueFrom?.secretKeyRef, `${where(m)}: ${c.name} env ${e.name} is not a secretKeyRef`);
        }
      }
    }
    for (const m of manifests) {
      assert.notEqual(m.doc.kind, 'Secret', `${where(m)}: Secrets are created by hand, not committed`);
      assert.doesNotMatch(
        JSON.stringify(m.doc),
        /postgres(ql)?:\/\/[^/\s"]*:[^@/\s"]+@/,
        `${where(m)}: a URL with a password`,
      );
    }
  });

  it('each Service selects its Deployment’s pod labels and exposes the right port', () => {
    for (const [name, port] of [
      ['pgwarden', 9187],
      ['pgbouncer', 6432],
    ] as const) {
      const service = find('Service', name);
      const deployment = find('Deployment', name);
      const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
      const selector = service.spec.selector as Record<string, string>;
      assert.ok(Object.keys(selector).length > 0, `${name}: empty selector`);
      for (const [k, v] of Object.entries(selector)) assert.equal(podLabels[k], v, `${name}: selector ${k}`);
      for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels as Record<string, string>)) {
        assert.equal(podLabels[k], v, `${name}: the Deployment's selector ${k}`);
      }
      assert.ok(
        (service.spec.ports as Doc[]).some((p) => p.port === port),
        `${name}: Service port ${port}`,
      );
    }
  });

  it('the ConfigMap’s pgwarden.yaml is a valid configuration: urlEnv, suggest, tokenEnv, the runbook escalation', () => {
    const text = find('ConfigMap', 'pgwarden-config').data['pgwarden.yaml'] as string;
    const config = parseConfig(YAML.parse(text));
    assert.equal(config.mode, 'suggest');
    assert.deepEqual(
      config.databases.map((d) => [d.url, d.urlEnv]),
      [[undefined, 'DATABASE_URL']],
    );
    assert.equal(config.http.tokenEnv, 'PGWARDEN_TOKEN');
    assert.equal(config.http.token, undefined);
    assert.equal(config.http.port, 9187);
    assert.equal(config.http.host, '0.0.0.0', 'bound beyond loopback so the probes reach it');
    assert.equal(config.store, '/var/lib/pgwarden/pgwarden.db');
    assert.deepEqual(
      config.escalation?.map((l) => [l.level, l.after / 60_000, l.name]),
      [
        [1, 15, 'Database Team'],
        [2, 30, 'Infrastructure Lead'],
        [3, 60, 'VP of Engineering'],
      ],
    );
    for (const n of config.notifiers) {
      if (n.kind === 'slack') assert.equal(n.url, undefined, 'the Slack webhook comes from the environment');
      if (n.kind === 'webhook')
        assert.equal(n.secret, undefined, 'the signing secret comes from the environment');
    }
  });
});
