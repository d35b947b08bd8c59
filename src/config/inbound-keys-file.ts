import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Document, isAlias, isMap, isNode, parseDocument, visit, type YAMLMap } from 'yaml';
import { newInboundKey } from '../security/inbound-keys.js';
import { MAX_YAML_ALIAS_COUNT, yamlAliasProblem } from './sources.js';

export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * `keys add NAME`: a new random key, printed once by the caller; only its SHA-256 goes into the
 * config file (inboundKeys.NAME), edited in place with comments and layout kept (a new file is
 * written in block style). A file that does not exist yet is created 0600.
 */
export function addInboundKey(file: string, name: string): string {
  checkName(name);
  const doc = openKeysFile(file);
  if (doc.hasIn(['inboundKeys', name])) {
    throw new Error(`inboundKeys.${name} already exists in ${file}; use keys rotate ${name} for a new key, or keys remove ${name}`);
  }
  const { key, hash } = newInboundKey();
  if (!doc.has('inboundKeys')) doc.set('inboundKeys', doc.createNode({}));
  doc.setIn(['inboundKeys', name], hash);
  saveKeysFile(file, doc);
  return key;
}

/** `keys rotate NAME`: a new key for NAME (printed once by the caller), its routes kept. */
export function rotateInboundKey(file: string, name: string): string {
  checkName(name);
  const doc = openKeysFile(file);
  if (isAlias(doc.get('inboundKeys', true))) {
    throw new Error(`inboundKeys in ${file} is an alias of another mapping; write the keys out under inboundKeys, then rotate`);
  }
  const entry = doc.getIn(['inboundKeys', name], true);
  if (entry === undefined) throw new Error(`there is no inboundKeys.${name} in ${file}; add it with keys add ${name}`);
  // `alice: *k` shares its anchor's node: read through it (an alias is no map, and writing a bare
  // hash over it dropped the routes, widening the key to every route), and write this key's own copy
  // so that the anchor and its other users stay as they are.
  const node = isAlias(entry) ? entry.resolve(doc) : entry;
  if (!isAlias(entry) && isNode(node) && node.anchor && anchorUsed(doc, node.anchor)) {
    throw new Error(
      `inboundKeys.${name} in ${file} is anchored (&${node.anchor}) and used elsewhere (*${node.anchor}): rotating it in place would change those too; write them out separately, then rotate`,
    );
  }
  const { key, hash } = newInboundKey();
  // `alice: sha256:...` or `alice: { hash: sha256:..., routes: [...] }`: the routes stay.
  if (isMap(node)) {
    const own = isAlias(entry) ? dropAnchors(node.clone() as typeof node) : node;
    own.set('hash', hash);
    if (own !== node) doc.setIn(['inboundKeys', name], own);
  } else {
    doc.setIn(['inboundKeys', name], hash);
  }
  saveKeysFile(file, doc);
  return key;
}

function anchorUsed(doc: Document, anchor: string): boolean {
  let used = false;
  visit(doc, {
    Alias(_, alias) {
      if (alias.source === anchor) used = true;
    },
  });
  return used;
}

/** A copy of an anchored node must not define its anchors a second time. */
function dropAnchors(node: YAMLMap): YAMLMap {
  visit(node, {
    Node(_, n) {
      if (!isAlias(n)) delete n.anchor;
    },
  });
  return node;
}

/** `keys remove NAME`. */
export function removeInboundKey(file: string, name: string): void {
  const doc = openKeysFile(file);
  if (!doc.hasIn(['inboundKeys', name])) throw new Error(`there is no inboundKeys.${name} in ${file}`);
  doc.deleteIn(['inboundKeys', name]);
  saveKeysFile(file, doc);
}

/** `keys list`: each key's name and the routes it may use (the hashes are not shown). */
export function listInboundKeys(file: string): Array<{ name: string; routes: string[] | 'all' }> {
  if (!existsSync(file)) return [];
  const doc = openKeysFile(file);
  let keys: { inboundKeys?: Record<string, string | { routes?: string[] }> };
  try {
    keys = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (err) {
    throw new Error(yamlAliasProblem(file, err));
  }
  return Object.entries(keys.inboundKeys ?? {}).map(([name, value]) => ({
    name,
    routes: typeof value === 'object' && value !== null && Array.isArray(value.routes) ? value.routes : 'all',
  }));
}

function checkName(name: string): void {
  if (!KEY_NAME_PATTERN.test(name)) throw new Error(`key name "${name}" may use letters, digits, ".", "_" and "-" only`);
}

/** The config file as a YAML document, comments and layout kept; a new or empty file is block style. */
function openKeysFile(file: string): Document {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (text.trim() === '') return new Document({});
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new Error(`${file} is not valid YAML (${doc.errors[0]!.message.split('\n')[0]}); fix it first`);
  if (!isMap(doc.contents)) throw new Error(`${file} does not hold a YAML mapping; fix it first`);
  return doc;
}

/** Written in place, keeping the file's mode; a file that does not exist yet is created 0600. */
function saveKeysFile(file: string, doc: Document): void {
  const exists = existsSync(file);
  writeFileSync(file, doc.toString(), { mode: exists ? statSync(file).mode & 0o777 : 0o600 });
}
