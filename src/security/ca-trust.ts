import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

const contexts = new Map<string, SecureContext>();

/**
 * The public roots plus a route's caFile (corporate TLS inspection, a test CA), built once per
 * file. Verification stays on: a caFile only adds trust anchors. Handed to Node as a prebuilt
 * `secureContext`, not as `ca`: https.Agent#getName concatenates every `ca` certificate into the
 * pool key on every request (a quarter of the CPU per request with ~140 roots).
 */
export function trustWithCaFile(caFile: string): SecureContext {
  let context = contexts.get(caFile);
  if (!context) {
    context = createSecureContext({ ca: [...rootCertificates, readFileSync(caFile, 'utf8')] });
    contexts.set(caFile, context);
  }
  return context;
}
