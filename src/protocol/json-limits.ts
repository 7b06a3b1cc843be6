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
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (v === null || v === undefined || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) fail('max_bytes', limits.maxBytes, 'holds a number JSON cannot carry');
      continue;
    }
    if (typeof v === 'string') {
      if (v.length > limits.maxStringLength)
        fail('max_string_length', limits.maxStringLength, `holds a string of ${v.length} characters`);
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
      for (const item of v) stack.push({ v: item, depth: depth + 1 });
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new FleetError(code, `${what} holds an object that is not plain JSON`);
    }
    for (const key of Object.keys(v)) {
      keys += 1;
      if (key.length > limits.maxStringLength)
        fail('max_string_length', limits.maxStringLength, `holds a key of ${key.length} characters`);
      stack.push({ v: (v as Record<string, unknown>)[key], depth: depth + 1 });
    }
    if (keys > limits.maxKeys) fail('max_keys', limits.maxKeys, `has more than ${limits.maxKeys} entries`);
  }
  // The shape is bounded now, so serializing cannot overflow; the size is what the stores and frames carry.
  const text = JSON.stringify(value) ?? '';
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxBytes) fail('max_bytes', limits.maxBytes, `is ${bytes} bytes`);
}
