import { isIP } from 'node:net';

/** The fix for a listener reachable from other machines without inbound keys (config load and bound-address check). */
export const OPEN_LISTENER_FIX = 'configure inboundKeys (dbx-gateway keys add NAME) or pass --allow-unauthenticated-network if the network is yours alone';

/** True for names and addresses that never leave this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** True for a bound or peer address on this machine only (IPv4-mapped IPv6 included). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'));
}
