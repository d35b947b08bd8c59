import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { SecureContext } from 'node:tls';

type CaSource = 'default' | 'system' | 'bundled' | 'extra';

/**
 * tls.getCACertificates (Node 22.15+, 23.5+, 24+; node/doc/api/tls.md): 'system' reads the
 * operating system's trust store (Windows certificate stores, macOS keychains, OpenSSL's default
 * file and directory elsewhere) whether or not Node was started with --use-system-ca, and
 * 'default' is what Node trusts by default (its bundled Mozilla roots plus NODE_EXTRA_CA_CERTS).
 * Absent on Node 20: there only the bundled roots, NODE_EXTRA_CA_CERTS and caFile count.
 */
type Tls = typeof import('node:tls') & { getCACertificates?: (type?: CaSource) => string[] };

// Loaded on first use: errors.ts (and so every CLI command, --version included) imports this
// module, and node:tls brings OpenSSL's bindings with it.
let tlsModule: Tls | undefined;
const nodeTls = (): Tls => (tlsModule ??= createRequire(import.meta.url)('node:tls') as Tls);

/** Whether this Node can read the operating system's trust store (and so the gateway uses it). */
export function readsSystemTrustStore(): boolean {
  return typeof nodeTls().getCACertificates === 'function';
}

let baseRoots: string[] | undefined;
const contexts = new Map<string, SecureContext | undefined>();

/**
 * What every upstream connection trusts: Node's bundled roots, NODE_EXTRA_CA_CERTS, the operating
 * system's trust store where this Node can read it (so a root CA that IT installed on Windows or
 * macOS just works), plus the route's caFile (corporate TLS inspection, a test CA). Built once
 * per caFile; undefined means Node's own default context is exactly that (Node 20, no caFile).
 * Verification stays on: these only add trust anchors. Handed to Node as a prebuilt
 * `secureContext`, not as `ca`: https.Agent#getName concatenates every `ca` certificate into the
 * pool key on every request (a quarter of the CPU per request with ~140 roots).
 */
export function upstreamTrust(caFile?: string): SecureContext | undefined {
  const key = caFile ?? '';
  if (contexts.has(key)) return contexts.get(key);
  let context: SecureContext | undefined;
  if (caFile !== undefined || readsSystemTrustStore()) {
    const extra = caFile !== undefined ? [readFileSync(caFile, 'utf8')] : [];
    context = nodeTls().createSecureContext({ ca: [...rootsBeyondCaFile(), ...extra] });
  }
  contexts.set(key, context);
  return context;
}

function rootsBeyondCaFile(): string[] {
  if (baseRoots) return baseRoots;
  const { getCACertificates, rootCertificates } = nodeTls();
  if (getCACertificates) {
    let system: string[] = [];
    try {
      system = getCACertificates('system');
    } catch {
      // An unreadable store leaves the bundled roots and NODE_EXTRA_CA_CERTS, as plain Node has.
    }
    baseRoots = [...new Set([...getCACertificates('default'), ...system])];
  } else {
    // A `ca` list replaces Node's defaults, NODE_EXTRA_CA_CERTS included: read that file as Node
    // does (a missing or unreadable one is Node's warning at start, not an error here).
    let extra: string[] = [];
    const file = process.env.NODE_EXTRA_CA_CERTS;
    if (file) {
      try {
        extra = [readFileSync(file, 'utf8')];
      } catch {
        // Node already warned once at start.
      }
    }
    baseRoots = [...rootCertificates, ...extra];
  }
  return baseRoots;
}
