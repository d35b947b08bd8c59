import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expiry, plural, span } from '../../src/english.js';

describe('counts and times read like English', () => {
  test('one route, two routes; irregular plurals given', () => {
    assert.equal(plural(1, 'route'), '1 route');
    assert.equal(plural(0, 'route'), '0 routes');
    assert.equal(plural(2, 'entry', 'entries'), '2 entries');
  });

  test('a time before now is "ago", never a negative number', () => {
    assert.equal(expiry(45_000), 'expires in 45 s');
    assert.equal(expiry(-60_000), 'expired 60 s ago');
    assert.equal(expiry(42 * 60_000), 'expires in 42 min');
    assert.equal(span(3 * 3600_000 + 5 * 60_000), '3 h 5 min');
    assert.equal(span(2 * 3600_000), '2 h');
  });
});
