/**
 * Bounds on the shape of a JSON value that crosses a trust boundary (a submitted payload, a worker's output).
 *
 * JSON.parse accepts nesting that JSON.stringify and structuredClone cannot take back (V8 overflows its
 * stack near 10 000 levels), so a value that parsed fine can still break every later read of the record
 * holding it. Checking the shape before anything is stored keeps every read path safe. The walk is
 * iterative: it must not overflow on the very input it exists to refuse.
 */
import { FleetError, type ErrorCode } from './errors.js';

export interface JsonLimits {
  /** Serialized size in bytes (UTF-8). */
  maxBytes: number;
  /** Nesting of arrays and objects; a scalar at the top is depth 0. */
  maxDepth: number;
  /** Object keys plus array elements, summed over the whole value. */
  maxKeys: number;
  /** Longest string, keys included, in UTF-16 code units. */
  maxStringLength: number;
}

export type JsonLimitName = 'max_bytes' | 'max_depth' | 'max_keys' | 'max_string_length';

/** Throws `code` (default `invalid_task`) naming the limit a value breaks; `what` names the value in the message. */
export function checkJsonLimits(
  value: unknown,
  limits: JsonLimits,
  what: string,
  code: ErrorCode = 'invalid_task',
): void {
  const fail = (limit: JsonLimitName, bound: number, message: string): never => {
    throw new FleetError(code, `${what} ${message} (limit ${limit}: ${bound})`, {
      details: { limit, bound },
    });
  };
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 0 }];
  let keys = 0;
  // The size JSON.stringify would give, summed on the walk: serializing the value once more only to measure
  // it doubled the JSON work of every submission and every result (docs/performance.md).
  let bytes = 0;
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (v === null || v === undefined) {
      bytes += 4; // `null` (an undefined array element is written so; an undefined property is skipped below)
      continue;
    }
    if (typeof v === 'boolean') {
      bytes += v ? 4 : 5;
      continue;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) fail('max_bytes', limits.maxBytes, 'holds a number JSON cannot carry');
      bytes += String(v).length;
      continue;
    }
    if (typeof v === 'string') {
      if (v.length > limits.maxStringLength)
        fail('max_string_length', limits.maxStringLength, `holds a string of ${v.length} characters`);
      bytes += jsonStringBytes(v);
      if (bytes > limits.maxBytes) fail('max_bytes', limits.maxBytes, `is over ${limits.maxBytes} bytes`);
      continue;
    }
    if (typeof v !== 'object') {
      throw new FleetError(code, `${what} holds a ${typeof v}, which JSON cannot carry`);
    }
    if (depth + 1 > limits.maxDepth)
      fail('max_depth', limits.maxDepth, `is nested deeper than ${limits.maxDepth} levels`);
    if (Array.isArray(v)) {
      keys += v.length;
      if (keys > limits.maxKeys) fail('max_keys', limits.maxKeys, `has more than ${limits.maxKeys} entries`);
      bytes += 2 + Math.max(0, v.length - 1); // brackets and commas
      for (const item of v) {
        // JSON writes a function or symbol in an array as null, like undefined.
        stack.push({
          v: typeof item === 'function' || typeof item === 'symbol' ? null : item,
          depth: depth + 1,
        });
      }
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new FleetError(code, `${what} holds an object that is not plain JSON`);
    }
    let written = 0;
    for (const key of Object.keys(v)) {
      keys += 1;
      if (key.length > limits.maxStringLength)
        fail('max_string_length', limits.maxStringLength, `holds a key of ${key.length} characters`);
      const item = (v as Record<string, unknown>)[key];
      // JSON.stringify leaves out a property whose value is undefined, a function or a symbol.
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
      written += 1;
      bytes += jsonStringBytes(key) + 1; // "key":
      stack.push({ v: item, depth: depth + 1 });
    }
    bytes += 2 + Math.max(0, written - 1); // braces and commas
    if (keys > limits.maxKeys) fail('max_keys', limits.maxKeys, `has more than ${limits.maxKeys} entries`);
  }
  if (bytes > limits.maxBytes) fail('max_bytes', limits.maxBytes, `is ${bytes} bytes`);
}

/** Characters JSON.stringify escapes inside a string, and lone surrogates (written as \uXXXX escapes). */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;
const SHORT_ESCAPES = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x22, 0x5c]);

/** UTF-8 bytes of JSON.stringify(s), quotes included, without building it. */
function jsonStringBytes(s: string): number {
  let n = Buffer.byteLength(s) + 2;
  if (!NEEDS_ESCAPE.test(s)) return n;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20) n += SHORT_ESCAPES.has(c) ? 1 : 5;
    else if (c === 0x22 || c === 0x5c) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff)
        i += 1; // a pair: 4 UTF-8 bytes, counted right by byteLength
      else n += 3; // lone high surrogate: byteLength counts 3 (U+FFFD), JSON writes 6 (\udXXX)
    } else if (c >= 0xdc00 && c <= 0xdfff) n += 3; // lone low surrogate
  }
  return n;
}
