// Loaded with --require ONLY by run-under-wine.sh, never on real Windows.
//
// Wine 8.0 (Debian bookworm) does not implement setsockopt(IPPROTO_TCP, TCP_KEEPALIVE) (option 3,
// "fixme:winsock:setsockopt Unknown IPPROTO_TCP optname 0x00000003"; Windows has it since 10
// 1709). libuv 1.46 (Node 20) applies a keep-alive requested before the socket connected as part
// of uv_tcp_connect, so that WSAENOPROTOOPT fails the connect itself: `connect UNKNOWN
// 127.0.0.1:PORT`. undici (the gateway's upstream client) and Node's http Agent both call
// setKeepAlive() on a connecting socket. This defers such a call to the 'connect' event, where
// libuv's failure is ignored (SO_KEEPALIVE itself is set; only the idle time is not) - what
// net.connect({ keepAlive: true }) already does. Nothing else changes.
'use strict';
const net = require('node:net');

const original = net.Socket.prototype.setKeepAlive;
net.Socket.prototype.setKeepAlive = function setKeepAliveAfterConnect(enable, initialDelay) {
  if (this.connecting) {
    this.once('connect', () => original.call(this, enable, initialDelay));
    return this;
  }
  return original.call(this, enable, initialDelay);
};
