import { closeSync, openSync, readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { isIPv4, isIPv6, type Server as NetServer } from 'node:net';
import { endianness, userInfo } from 'node:os';
import { GatewayError } from '../errors.js';
import { isLoopbackAddress } from './loopback.js';

// "Loopback means you": on Linux a loopback listener without inbound keys serves only processes
// of the gateway's own user. The kernel lists every TCP endpoint of this network namespace, with
// its owner's uid, in /proc/net/tcp and /proc/net/tcp6 (proc(5), "/proc/net/tcp"); the client's
// end of a loopback connection is one of those rows. Both ends are looked up, ours as a check that
// the table describes our sockets at all, as PuTTY's socket_peer_is_same_user does
// for its connection sharing. macOS and Windows have no such table.

export const PROC_NET_TCP = { tcp: '/proc/net/tcp', tcp6: '/proc/net/tcp6' } as const;
export type ProcNetFiles = { readonly tcp: string; readonly tcp6: string };

/** The two ends of one connection, as Node's socket reports them. */
export interface ConnectionEnds {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/** The fields of one /proc/net/tcp row that the check reads. */
export interface ProcNetRow {
  /** TCP state, as the kernel numbers them (1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN). */
  state: number;
  uid: number;
  /** 0 once no process holds the socket (closed, or TIME_WAIT): then the uid says nothing (it reads 0). */
  inode: number;
}

/** How a listener stands: checked per connection, not a loopback TCP listener, or not checkable here (why). */
export type SameUserStatus = { enforced: true } | { enforced: false; reason?: string };

const SHARE_FIX = 'to share the gateway, configure inbound keys (dbx-gateway keys add NAME) and give that user a key';

export interface SameUserGuard {
  /** As a connection arrives: starts its lookup while the client's end is surely still open. */
  expect(connection: object, ends: ConnectionEnds): void;
  /** Calls `then` with the connection's verdict (at once if known): undefined to serve it, else the 403. */
  decide(connection: object, ends: ConnectionEnds, then: (refusal: GatewayError | undefined) => void): void;
}

/**
 * The guard of one listener. `wanted` is asked per connection (a reload may add or remove inbound
 * keys); whether this listener can be checked at all is found once, at its first connection.
 *
 * A lookup walks the kernel's whole table of connections, empty hash buckets included: milliseconds
 * (docs/benchmarks.md), whatever the number of sockets. So it is read off the event loop (libuv's
 * thread pool), one read at a time per listener, and the connections that arrive during a read are
 * all looked up by the next one: a burst of connections costs a few reads, not one each.
 */
export function createSameUserGuard(server: NetServer, wanted: () => boolean, files: ProcNetFiles = PROC_NET_TCP): SameUserGuard {
  let status: SameUserStatus | undefined;
  const verdicts = new WeakMap<object, GatewayError | null>();
  const waiting = new Map<object, Array<(refusal: GatewayError | undefined) => void>>();
  let queued = new Map<object, ConnectionEnds>();
  let reading = false;
  const enforced = () => {
    status ??= sameUserStatus(server, files);
    return status.enforced;
  };
  const readQueued = async () => {
    reading = true;
    while (queued.size > 0) {
      const batch = [...queued];
      queued = new Map();
      const answers = await judgePeersAsync(
        batch.map(([, ends]) => ends),
        files,
      ).catch(() => batch.map(() => cannotConfirm(files)));
      batch.forEach(([connection], i) => {
        const refusal = answers[i];
        verdicts.set(connection, refusal ?? null);
        const callbacks = waiting.get(connection) ?? [];
        waiting.delete(connection);
        for (const then of callbacks) then(refusal);
      });
    }
    reading = false;
  };
  const enqueue = (connection: object, ends: ConnectionEnds) => {
    if (verdicts.has(connection) || waiting.has(connection)) return;
    waiting.set(connection, []);
    // Read now: a socket that closes forgets its addresses.
    const { localAddress, localPort, remoteAddress, remotePort } = ends;
    queued.set(connection, { localAddress, localPort, remoteAddress, remotePort });
    if (!reading) void readQueued();
  };
  return {
    expect(connection, ends) {
      if (wanted() && enforced()) enqueue(connection, ends);
    },
    decide(connection, ends, then) {
      if (!wanted() || !enforced()) return then(undefined);
      const verdict = verdicts.get(connection);
      if (verdict !== undefined) return then(verdict ?? undefined);
      enqueue(connection, ends);
      waiting.get(connection)?.push(then);
    },
  };
}

/**
 * Whether connections to this listener can be attributed to a user: Linux, a loopback TCP
 * listener, and its own LISTEN row visible in /proc/net/tcp{,6} with our uid. Not visible means a
 * /proc that does not describe this process's sockets (WSL 1, a restricted or foreign /proc).
 */
export function sameUserStatus(server: NetServer, files: ProcNetFiles = PROC_NET_TCP): SameUserStatus {
  const address = server.address();
  if (address === null || typeof address === 'string' || !isLoopbackAddress(address.address)) return { enforced: false };
  if (process.platform !== 'linux' || typeof process.getuid !== 'function') {
    return { enforced: false, reason: `${process.platform === 'darwin' ? 'macOS' : process.platform} does not tell which user a TCP client runs as` };
  }
  const own = endpointForms(address.address, address.port);
  const anyPort = endpointForms(isIPv4(address.address) ? '0.0.0.0' : '::', 0);
  const file = isIPv4(address.address) ? 'tcp' : 'tcp6';
  const needle = `${own[file]} ${anyPort[file]}`;
  const found = scanProcNet(files[file], [needle]).get(needle);
  if (found?.uid === process.getuid()) return { enforced: true };
  return { enforced: false, reason: `${files[file]} does not list this gateway's listener (a restricted /proc, WSL 1, or another network namespace)` };
}

/** undefined when the client is this process's user; else the 403 to answer, saying how to share. */
export function judgePeer(ends: ConnectionEnds, files: ProcNetFiles = PROC_NET_TCP): GatewayError | undefined {
  return judgePeers([ends], files)[0];
}

/** judgePeer for several connections, with one read of the tables. */
export function judgePeers(list: readonly ConnectionEnds[], files: ProcNetFiles = PROC_NET_TCP): Array<GatewayError | undefined> {
  return findEachConnectionRows(list, files).map((rows) => verdictOn(rows, files));
}

/** judgePeers reading the tables off the event loop. */
export async function judgePeersAsync(list: readonly ConnectionEnds[], files: ProcNetFiles = PROC_NET_TCP): Promise<Array<GatewayError | undefined>> {
  return (await findEachConnectionRowsAsync(list, files)).map((rows) => verdictOn(rows, files));
}

function verdictOn({ own, peer }: ConnectionRows, files: ProcNetFiles): GatewayError | undefined {
  const uid = process.getuid?.() ?? -1;
  if (own?.uid === uid && own.inode !== 0 && peer?.uid === uid && peer.inode !== 0) return undefined;
  if (own?.uid === uid && peer && peer.inode !== 0) {
    return new GatewayError(
      'GATEWAY_FORBIDDEN',
      `this gateway serves only its own user (${userName(uid)}) on loopback, and this connection comes from uid ${peer.uid}; ${SHARE_FIX}`,
    );
  }
  return cannotConfirm(files);
}

/**
 * The client's end is not in the table: it closed before it was looked up, or the connection reached
 * this namespace's loopback in a way the table does not show. Refused: serving it would mean
 * serving an unknown user.
 */
function cannotConfirm(files: ProcNetFiles): GatewayError {
  return new GatewayError(
    'GATEWAY_FORBIDDEN',
    `this gateway serves only its own user (${userName(process.getuid?.() ?? -1)}) on loopback, and could not find this connection's client in ${files.tcp} or ${files.tcp6}; connect as that user, or ${SHARE_FIX}`,
  );
}

export interface ConnectionRows {
  own: ProcNetRow | undefined;
  peer: ProcNetRow | undefined;
}

/** The rows of both ends of one connection: `own` (this process's end) and `peer` (the client's). */
export function findConnectionRows(ends: ConnectionEnds, files: ProcNetFiles = PROC_NET_TCP): ConnectionRows {
  return findEachConnectionRows([ends], files)[0] ?? { own: undefined, peer: undefined };
}

/** findConnectionRows for several connections, reading each file at most once. */
export function findEachConnectionRows(list: readonly ConnectionEnds[], files: ProcNetFiles = PROC_NET_TCP): ConnectionRows[] {
  const plan = planSearch(list);
  for (const file of ['tcp', 'tcp6'] as const) {
    const needles = plan.needles(file);
    if (needles.length > 0) plan.take(file, scanProcNet(files[file], needles));
  }
  return plan.rows;
}

async function findEachConnectionRowsAsync(list: readonly ConnectionEnds[], files: ProcNetFiles): Promise<ConnectionRows[]> {
  const plan = planSearch(list);
  for (const file of ['tcp', 'tcp6'] as const) {
    const needles = plan.needles(file);
    if (needles.length > 0) plan.take(file, await scanProcNetAsync(files[file], needles));
  }
  return plan.rows;
}

/** What to look for in each file for `list`, and the rows found so far. */
function planSearch(list: readonly ConnectionEnds[]) {
  const searches = list.map(({ localAddress, localPort, remoteAddress, remotePort }) => {
    if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return undefined;
    const local = endpointForms(localAddress, localPort);
    const remote = endpointForms(remoteAddress, remotePort);
    // Our socket is in the file of its own family. A v4 connection's client may be an IPv6 socket
    // speaking to ::ffff:127.0.0.1, listed in tcp6 with mapped addresses.
    const ownFile: keyof ProcNetFiles = isIPv4(localAddress) ? 'tcp' : 'tcp6';
    const key = (file: keyof ProcNetFiles, a: typeof local, b: typeof local) => (a[file] && b[file] ? `${a[file]} ${b[file]}` : undefined);
    return { ownFile, own: key(ownFile, local, remote), peer: { tcp: key('tcp', remote, local), tcp6: key('tcp6', remote, local) } };
  });
  const rows: ConnectionRows[] = list.map(() => ({ own: undefined, peer: undefined }));
  return {
    rows,
    needles(file: keyof ProcNetFiles): string[] {
      const needles = new Set<string>();
      searches.forEach((search, i) => {
        if (!search) return;
        if (search.ownFile === file && search.own) needles.add(search.own);
        if (!rows[i]?.peer?.inode && search.peer[file]) needles.add(search.peer[file]);
      });
      return [...needles];
    },
    take(file: keyof ProcNetFiles, found: Map<string, ProcNetRow>): void {
      searches.forEach((search, i) => {
        const row = rows[i];
        if (!search || !row) return;
        if (search.ownFile === file && search.own) row.own = found.get(search.own);
        const peer = search.peer[file] ? found.get(search.peer[file]) : undefined;
        if (peer && !row.peer?.inode) row.peer = peer;
      });
    },
  };
}

/** Read in pieces: /proc/net/tcp lists every socket of the namespace, and the search stops at the rows it needs. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The row of each needle ("LOCAL:PORT REMOTE:PORT", the second and third fields of a row) in one
 * /proc/net/tcp-format file; a missing or unreadable file finds nothing. Read in pieces, and each
 * line looked up once whatever the number of needles (a batch of connections costs one pass).
 */
export function scanProcNet(path: string, needles: readonly string[]): Map<string, ProcNetRow> {
  const finder = createRowFinder(needles);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return finder.found;
  }
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    while (!finder.feed(buffer, readSync(fd, buffer, 0, CHUNK_BYTES, null)));
  } finally {
    closeSync(fd);
  }
  return finder.found;
}

/** scanProcNet off the event loop. */
async function scanProcNetAsync(path: string, needles: readonly string[]): Promise<Map<string, ProcNetRow>> {
  const finder = createRowFinder(needles);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch {
    return finder.found;
  }
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    while (!finder.feed(buffer, (await handle.read(buffer, 0, CHUNK_BYTES, null)).bytesRead));
  } finally {
    await handle.close();
  }
  return finder.found;
}

/**
 * Takes a file's pieces in order (n = 0 at its end) and says when every needle has a row. A row
 * whose socket no process holds any more (inode 0) is kept only until a live one with the same
 * ends turns up.
 */
function createRowFinder(needles: readonly string[]) {
  const found = new Map<string, ProcNetRow>();
  const wanted = new Set(needles);
  const keyLength = needles[0]?.length ?? 0;
  let carry = '';
  return {
    found,
    feed(buffer: Buffer, n: number): boolean {
      const text = carry + buffer.toString('latin1', 0, n);
      // Whole lines only; the partial last one is searched with the next piece.
      const end = n === 0 ? text.length : text.lastIndexOf('\n') + 1;
      for (let line = 0; line < end; ) {
        const next = text.indexOf('\n', line);
        const stop = next === -1 || next >= end ? end : next;
        // "%4d: LOCAL REMOTE ...": the key starts after the slot number.
        const at = text.indexOf(': ', line) + 2;
        if (at > 1 && at < stop) {
          const key = text.slice(at, at + keyLength);
          if (wanted.has(key)) {
            const row = parseRow(text.slice(line, stop));
            if (row && (row.inode !== 0 || !found.has(key))) found.set(key, row);
            if (row?.inode) wanted.delete(key);
          }
        }
        line = stop + 1;
      }
      carry = text.slice(end);
      return n === 0 || wanted.size === 0;
    },
  };
}

/** Fields: sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode (net/ipv4/tcp_ipv4.c, get_tcp4_sock). */
function parseRow(line: string): ProcNetRow | undefined {
  const fields = line.trim().split(/\s+/);
  const state = Number.parseInt(fields[3] ?? '', 16);
  const uid = Number(fields[7]);
  const inode = Number(fields[9]);
  return Number.isInteger(uid) && Number.isInteger(inode) && Number.isInteger(state) ? { state, uid, inode } : undefined;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * An address and port as the kernel prints them: the address as 32-bit words in host byte order
 * (%08X each; one for IPv4, four for IPv6), the port in hex. An IPv4 address has both forms
 * (tcp, and tcp6 as ::ffff:a.b.c.d); an IPv6 one only tcp6.
 */
export function endpointForms(address: string, port: number): { tcp?: string; tcp6?: string } {
  const bytes = addressBytes(address);
  if (!bytes) return {};
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const mapped = bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  const v4 = bytes.length === 4 ? bytes : mapped ? bytes.slice(12) : undefined;
  if (!v4) return { tcp6: words(bytes) + hexPort };
  return { tcp: words(v4) + hexPort, tcp6: words([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]) + hexPort };
}

function words(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (LITTLE_ENDIAN) word.reverse();
    for (const b of word) out += b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function addressBytes(address: string): number[] | undefined {
  const plain = address.split('%', 1)[0] ?? address;
  if (isIPv4(plain)) return plain.split('.').map(Number);
  if (!isIPv6(plain)) return undefined;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(plain)?.[1];
  const text = tail ? `${plain.slice(0, -tail.length)}0:0` : plain;
  const [head = '', rest] = text.split('::');
  const before = head ? head.split(':') : [];
  const after = rest ? rest.split(':') : [];
  const groups = rest === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after];
  const bytes = groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
  if (tail) bytes.splice(12, 4, ...tail.split('.').map(Number));
  return bytes;
}

function userName(uid: number): string {
  try {
    return `${userInfo().username}, uid ${uid}`;
  } catch {
    // No passwd entry for this uid (a container started with --user 1234).
    return `uid ${uid}`;
  }
}

/**
 * The startup line for the TCP loopback listeners of a gateway without inbound keys: on, or why
 * not (then any local user can act as the gateway's identities, and the line says so).
 */
export function describeSameUser(servers: readonly NetServer[], files: ProcNetFiles = PROC_NET_TCP): { enforced: boolean; message: string } | undefined {
  const statuses = servers.map((s) => sameUserStatus(s, files)).filter((s) => s.enforced || s.reason !== undefined);
  if (statuses.length === 0) return undefined;
  const reason = statuses.find((s): s is { enforced: false; reason: string } => !s.enforced)?.reason;
  if (reason === undefined) {
    return {
      enforced: true,
      message: `loopback listeners serve only processes of this user (${userName(process.getuid?.() ?? -1)}), checked per connection in /proc/net/tcp; other users get 403: ${SHARE_FIX}`,
    };
  }
  return {
    enforced: false,
    message: `any local user can reach the loopback listeners and act as the gateway's Databricks identities: ${reason}; on a shared machine use --socket (owner-only) or configure inbound keys (dbx-gateway keys add NAME)`,
  };
}
