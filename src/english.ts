// Counts and times in the messages people read: "1 route", "expired 60 s ago", never "1 routes"
// or "expires in -60 s".

/** `1 route`, `3 routes`; `plural(2, 'entry', 'entries')` for the irregular ones. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/** A span of time, rounded to what a person needs: `45 s`, `12 min`, `3 h 5 min`. */
export function span(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 120) return `${min} min`;
  return `${Math.floor(min / 60)} h${min % 60 ? ` ${min % 60} min` : ''}`;
}

/** A token's or certificate's end seen from now: `expires in 5 min`, `expired 60 s ago`. */
export function expiry(msFromNow: number): string {
  return msFromNow >= 0 ? `expires in ${span(msFromNow)}` : `expired ${span(msFromNow)} ago`;
}
