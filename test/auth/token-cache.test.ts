import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessToken, Credential } from '../../src/auth/credential.js';
import { EXPIRY_CUTOFF_MS, REJECT_BACKOFF_BASE_MS, REJECT_BACKOFF_MAX_MS, refreshAtMs, TokenCache } from '../../src/auth/token-cache.js';
import { GatewayError } from '../../src/errors.js';

/** A fake credential whose tokens live `lifetimeMs` on the injected clock; counts fetches. */
function fakeCredential(clock: { now: number }, lifetimeMs: number) {
  const state = { fetches: 0, fail: false, delayMs: 0, hang: false };
  const credential: Credential = {
    type: 'fake',
    id: 'fake',
    hint: 'run fake login',
    reason: 'test',
    async getToken(): Promise<AccessToken> {
      state.fetches++;
      if (state.hang) return new Promise(() => {});
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
      if (state.fail) throw new Error('AADSTS50173: grant expired; client_secret=hunter2-should-not-leak');
      return { token: `tok-${state.fetches}`, expiresOnMs: clock.now + lifetimeMs };
    },
  };
  return { credential, state };
}

const flush = () => new Promise((r) => setImmediate(r));

/** What the forwarder does on a 401: report the token it sent. */
async function rejectCurrent(cache: TokenCache, credential: Credential): Promise<boolean> {
  return cache.reject(credential, 'databricks', (await cache.get(credential, 'databricks')).token);
}

describe('TokenCache', () => {
  it('shares one fetch among 200 concurrent callers on a cold cache', async () => {
    const clock = { now: 1_000_000 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    state.delayMs = 20;
    const cache = new TokenCache({ now: () => clock.now });
    const tokens = await Promise.all(Array.from({ length: 200 }, () => cache.get(credential, 'databricks')));
    assert.equal(state.fetches, 1);
    assert.ok(tokens.every((t) => t.token === 'tok-1'));
  });

  it('computes the refresh point from the usable lifetime (1 h, 90 s and 60 s tokens)', () => {
    const obtainedAtMs = 0;
    const at = (lifetimeS: number) => refreshAtMs({ token: 't', obtainedAtMs, expiresOnMs: lifetimeS * 1000 });
    // 1 h: usable 3560 s, refresh 20 min before the cutoff.
    assert.equal(at(3600), (3600 - 40 - 20 * 60) * 1000);
    // 90 s: usable 50 s, refresh 25 s after issue; 60 s: usable 20 s, refresh 10 s after issue.
    assert.equal(at(90), 25_000);
    assert.equal(at(60), 10_000);
  });

  it('refreshes in the background before expiry and keeps serving the current token meanwhile', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 90_000);
    const cache = new TokenCache({ now: () => clock.now });
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-1');
    clock.now = 24_000;
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-1');
    assert.equal(state.fetches, 1, 'no refresh before the refresh point');
    clock.now = 26_000;
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-1', 'old token served while refreshing');
    await flush();
    assert.equal(state.fetches, 2);
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-2');
  });

  it('never hands out a token with 40 s or less left, even if no refresh ran (resume from sleep)', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    await cache.get(credential, 'databricks');
    clock.now = 3600_000 - EXPIRY_CUTOFF_MS; // wall clock jumped: exactly 40 s left
    const t = await cache.get(credential, 'databricks');
    assert.equal(t.token, 'tok-2');
    assert.equal(state.fetches, 2);
  });

  it('keeps serving a still-usable token when a refresh fails, and backs off before retrying', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    await cache.get(credential, 'databricks');
    state.fail = true;
    clock.now = 3600_000 - 40_000 - 10 * 60_000; // inside the refresh window
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-1');
    await flush();
    assert.equal(state.fetches, 2);
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-1');
    await flush();
    assert.equal(state.fetches, 2, 'no retry inside the backoff');
    assert.match(cache.status(credential, 'databricks').lastError ?? '', /AADSTS50173/);
    clock.now += 3_001;
    await cache.get(credential, 'databricks');
    await flush();
    assert.equal(state.fetches, 3, 'retried after the backoff');
  });

  it('answers GATEWAY_TOKEN_UNAVAILABLE at once with the hint and no secret when no token is usable', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    state.fail = true;
    const cache = new TokenCache({ now: () => clock.now });
    await assert.rejects(cache.get(credential, 'databricks'), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'GATEWAY_TOKEN_UNAVAILABLE');
      assert.equal(err.status, 503);
      assert.match(err.message, /run fake login/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });

  it('says in English how far a token it cannot use is from expiry, or how long ago it expired', async () => {
    const clock = { now: 1_000_000 };
    const soon = fakeCredential(clock, 30_000);
    const cache = new TokenCache({ now: () => clock.now });
    await assert.rejects(cache.get(soon.credential, 'databricks'), /a token that expires in 30 s, too close to expiry to use/);
    const dead = fakeCredential(clock, -60_000);
    await assert.rejects(cache.get(dead.credential, 'databricks'), (err: Error) => {
      assert.match(err.message, /a token that expired 60 s ago, so it cannot be used: is this machine's clock right\?/);
      assert.doesNotMatch(err.message, /-\d/);
      return true;
    });
  });

  it('bounds a token source that hangs', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    state.hang = true;
    const cache = new TokenCache({ now: () => clock.now, fetchTimeoutMs: 50 });
    // The cache's timer is unref'd (it must not keep a gateway alive); keep this test's loop alive.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await assert.rejects(cache.get(credential, 'databricks'), /did not answer within/);
    } finally {
      clearInterval(keepAlive);
    }
  });

  it('drops a token the upstream rejected and fetches a new one', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    const first = await cache.get(credential, 'databricks');
    cache.reject(credential, 'databricks', 'some-other-token');
    assert.equal((await cache.get(credential, 'databricks')).token, first.token, 'a stale 401 does not drop a newer token');
    cache.reject(credential, 'databricks', first.token);
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-2');
    assert.equal(state.fetches, 2);
  });

  it('keeps audiences apart', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    await cache.get(credential, 'databricks');
    await cache.get(credential, 'azure-management');
    assert.equal(state.fetches, 2);
  });
});

describe('upstream 401s cannot make the gateway hammer its credential', () => {
  it('drops the first rejected token, then drops its replacements only after a doubling backoff', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });

    assert.equal(await rejectCurrent(cache, credential), true, 'the first 401 drops the token');
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-2');
    assert.equal(state.fetches, 2);
    assert.equal(await rejectCurrent(cache, credential), false, 'a 401 to the replacement at once is ignored');
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-2', 'the token keeps being sent');
    for (let i = 0; i < 50; i++) assert.equal(await rejectCurrent(cache, credential), false);
    assert.equal(state.fetches, 2, 'no fetch per 401 inside the backoff');
    assert.equal(cache.status(credential, 'databricks').rejections, 1);

    clock.now += REJECT_BACKOFF_BASE_MS;
    assert.equal(await rejectCurrent(cache, credential), true, 'dropped once the backoff passed');
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-3');
    assert.equal(state.fetches, 3);

    clock.now += REJECT_BACKOFF_BASE_MS;
    assert.equal(await rejectCurrent(cache, credential), false, 'the backoff doubled');
    clock.now += REJECT_BACKOFF_BASE_MS;
    assert.equal(await rejectCurrent(cache, credential), true);
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-4');
    assert.equal(state.fetches, 4);
    assert.equal(cache.status(credential, 'databricks').rejections, 3);
  });

  it('caps the backoff while the 401s keep coming', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 24 * 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    // An upstream that answers 401 to a request every second for an hour.
    for (let s = 0; s < 3600; s++, clock.now += 1000) {
      await rejectCurrent(cache, credential);
    }
    // Drops at 0, 5, 15, 35, 75, 155, 315 s, then one every 5 min: 7 + 10.
    assert.equal(state.fetches, 1 + 7 + Math.floor((3600_000 - 315_000) / REJECT_BACKOFF_MAX_MS));
  });

  it('drops at once a token rejected long after the last 401 (streak reset)', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 90 * 24 * 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    assert.equal(await rejectCurrent(cache, credential), true);
    clock.now += REJECT_BACKOFF_BASE_MS;
    assert.equal(await rejectCurrent(cache, credential), true);
    assert.equal(cache.status(credential, 'databricks').rejections, 2);
    clock.now += REJECT_BACKOFF_MAX_MS + 1;
    assert.equal(cache.status(credential, 'databricks').rejections, 0);
    assert.equal(await rejectCurrent(cache, credential), true, 'a new streak drops the token without waiting');
    assert.equal((await cache.get(credential, 'databricks')).token, 'tok-4');
    assert.equal(state.fetches, 4);
  });

  it('treats concurrent 401s to one token as one rejection', async () => {
    const clock = { now: 0 };
    const { credential, state } = fakeCredential(clock, 3600_000);
    const cache = new TokenCache({ now: () => clock.now });
    const { token } = await cache.get(credential, 'databricks');
    const dropped = Array.from({ length: 20 }, () => cache.reject(credential, 'databricks', token));
    assert.ok(dropped.every(Boolean), 'every request that saw the 401 may replay');
    await Promise.all(Array.from({ length: 20 }, () => cache.get(credential, 'databricks')));
    assert.equal(state.fetches, 2, 'the replays share one fetch');
    assert.equal(cache.status(credential, 'databricks').rejections, 1);
  });
});
