/**
 * One first use of the local CA in a process of its own, for the concurrency test:
 *   node --import tsx test/helpers/local-certificate.ts DIR
 * prints the leaf and key it was given as JSON (warnings go to stderr).
 */
import { localCertificate } from '../../src/local/local-tls.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: local-certificate.ts DIR');
const { cert, key } = await localCertificate(dir, ['dbx-gateway.test']);
process.stdout.write(JSON.stringify({ cert, key }));
