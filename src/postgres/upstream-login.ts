import type { TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import { connectTcpUpstream, startTls } from '../proxy/connector.js';
import type { EgressProxy } from '../proxy/egress-proxy.js';
import type { ServerAddress } from './credential.js';
import { md5Password, scramSha256 } from './password-auth.js';
import { MAX_LOGIN_MESSAGE_BYTES, ProtocolError, readExactly, readMessage, type StartupMessage, serializeStartup } from './wire.js';

// The gateway logs in to the server for the client: SSLRequest, TLS with the host name verified,
// the rewritten StartupMessage, and the password exchange answered with the database credential
// (PostgreSQL docs 55.2.1 "Start-up"). What the client must see of the login (a protocol version
// negotiation, notices, AuthenticationOk) is handed back for the relay to pass on unchanged.

export interface UpstreamOptions {
  caFile?: string;
  proxy?: EgressProxy;
  timeoutMs: number;
}

export interface UpstreamLogin {
  socket: TLSSocket;
  /** Server messages up to and including AuthenticationOk, as they arrived, for the client. */
  forClient: Buffer[];
}

/** The server answered the login with an ErrorResponse: relayed to the client as it said it. */
export class ServerRefusedError extends Error {
  constructor(readonly fields: Map<string, string>) {
    super(fields.get('M') ?? 'the server refused the login');
    this.name = 'ServerRefusedError';
  }

  get sqlState(): string {
    return this.fields.get('C') ?? '28000';
  }
}

/** Something other than the server's own refusal went wrong talking to it (TLS refused, a protocol break). */
export class UpstreamLoginError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamLoginError';
  }
}

/** SSLRequest's one-byte answers. */
const TLS_ACCEPTED = 0x53; // 'S'

export async function openServerTls(address: ServerAddress, options: UpstreamOptions): Promise<TLSSocket> {
  const raw = await connectTcpUpstream(address.host, address.port, options);
  try {
    raw.write(serialize.requestSsl());
    const answer = await readExactly(raw, 1);
    if (answer[0] !== TLS_ACCEPTED) {
      throw new UpstreamLoginError(
        `${address.host}:${address.port} does not accept TLS (it answered the SSLRequest with ${JSON.stringify(answer.toString('latin1'))}); Lakebase requires TLS, so check postgres.host`,
      );
    }
    // Bytes before the handshake would be unauthenticated (CVE-2021-23222 is the client-side case).
    if (raw.readableLength > 0) throw new UpstreamLoginError(`${address.host}:${address.port} sent data before the TLS handshake`);
  } catch (err) {
    raw.destroy();
    throw err;
  }
  const tls = await startTls(raw, address.host, options);
  // Errors between reads (a reset while the SCRAM proof is computed) end the socket, whose close
  // the next read reports; an 'error' with no listener would end the process.
  tls.on('error', () => tls.destroy());
  return tls;
}

export async function loginUpstream(address: ServerAddress, startup: StartupMessage, password: string, options: UpstreamOptions): Promise<UpstreamLogin> {
  const socket = await openServerTls(address, options);
  try {
    socket.write(serializeStartup(startup));
    const user = startup.params.find(([k]) => k === 'user')?.[1] ?? '';
    const forClient: Buffer[] = [];
    let scram: ReturnType<typeof scramSha256> | undefined;
    for (;;) {
      const msg = await readMessage(socket, MAX_LOGIN_MESSAGE_BYTES);
      if (msg.type === 'E') throw new ServerRefusedError(parseFields(msg.body));
      // NegotiateProtocolVersion and notices are the client's to see.
      if (msg.type === 'v' || msg.type === 'N') {
        forClient.push(msg.raw);
        continue;
      }
      if (msg.type !== 'R' || msg.body.length < 4)
        throw new UpstreamLoginError(`the server sent an unexpected ${JSON.stringify(msg.type)} message during login`);
      const code = msg.body.readInt32BE(0);
      switch (code) {
        case 0: // AuthenticationOk
          forClient.push(msg.raw);
          return { socket, forClient };
        case 3: // AuthenticationCleartextPassword: what Lakebase asks (over TLS)
          socket.write(serialize.password(password));
          break;
        case 5: // AuthenticationMD5Password, with a 4-byte salt
          socket.write(serialize.password(md5Password(user, password, msg.body.subarray(4, 8))));
          break;
        case 10: {
          // AuthenticationSASL: the mechanisms, NUL-separated
          const mechanisms = msg.body.subarray(4).toString('utf8').split('\0');
          if (!mechanisms.includes('SCRAM-SHA-256')) throw new UpstreamLoginError(`the server offers only ${mechanisms.filter(Boolean).join(', ')}`);
          scram = scramSha256(password);
          socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst));
          break;
        }
        case 11: // AuthenticationSASLContinue: server-first-message
          if (!scram) throw new UpstreamLoginError('the server continued a SASL exchange that was not started');
          socket.write(serialize.sendSCRAMClientFinalMessage(await scram.final(msg.body.subarray(4).toString('utf8'))));
          break;
        case 12: // AuthenticationSASLFinal: server-final-message
          if (!scram) throw new UpstreamLoginError('the server ended a SASL exchange that was not started');
          scram.verify(msg.body.subarray(4).toString('utf8'));
          break;
        default:
          throw new UpstreamLoginError(
            `the server asked for an authentication method the gateway does not answer (code ${code}); Lakebase asks for a password`,
          );
      }
    }
  } catch (err) {
    socket.destroy();
    if (err instanceof ProtocolError) throw new UpstreamLoginError(`the server broke the protocol during login: ${err.message}`, { cause: err });
    throw err;
  }
}

/** ErrorResponse / NoticeResponse fields: a code byte and a C string each, then a NUL. */
export function parseFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const end = body.indexOf(0, offset + 1);
    if (end < 0) break;
    fields.set(String.fromCharCode(body[offset] ?? 0), body.toString('utf8', offset + 1, end));
    offset = end + 1;
  }
  return fields;
}
