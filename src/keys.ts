import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isMap, parseDocument } from 'yaml';
import { newInboundKey } from './security/inbound-keys.js';

export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * `keys add NAME`: a new random key, printed once by the caller; only its SHA-256 goes into the
 * config file (inboundKeys.NAME), edited in place with comments and layout kept. A file that does
 * not exist yet is created 0600.
 */
export function addInboundKey(file: string, name: string): string {
  if (!KEY_NAME_PATTERN.test(name)) throw new Error(`key name "${name}" may use letters, digits, ".", "_" and "-" only`);
  const exists = existsSync(file);
  const text = exists ? readFileSync(file, 'utf8') : '';
  // An empty file is an empty mapping; the first key turns it into `inboundKeys: ...`.
  const doc = parseDocument(text.trim() === '' ? '{}' : text);
  if (doc.errors.length > 0) throw new Error(`${file} is not valid YAML (${doc.errors[0]!.message.split('\n')[0]}); fix it first`);
  if (!isMap(doc.contents)) throw new Error(`${file} does not hold a YAML mapping; fix it first`);
  if (doc.hasIn(['inboundKeys', name])) {
    throw new Error(`inboundKeys.${name} already exists in ${file}; remove it first to replace the key`);
  }
  const { key, hash } = newInboundKey();
  if (!doc.has('inboundKeys')) doc.set('inboundKeys', doc.createNode({}));
  doc.setIn(['inboundKeys', name], hash);
  writeFileSync(file, doc.toString(), { mode: exists ? statSync(file).mode & 0o777 : 0o600 });
  return key;
}
