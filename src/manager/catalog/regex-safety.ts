/**
 * Which JSON Schema `pattern`s the manager may run on a payload string (issue 18). A worker's schema crosses
 * a trust boundary, and a pattern that backtracks catastrophically lets one submitted string stall the
 * manager's event loop. V8 matches with a backtracking engine, so the question is about the pattern's NFA:
 *
 * - Exponential backtracking needs exponential ambiguity (EDA): a state with two different loops reading the
 *   same string (`(a+)+`, `(a|aa)+`, `(\w+\s?)*`).
 * - Polynomial backtracking within one match attempt needs infinite degree of ambiguity (IDA): states p != q
 *   with p ->w p, p ->w q, q ->w q (`\d+\d+x`, `a*a*a*b`).
 *
 * Both are decided on the product of the pattern's position (Glushkov) automaton with itself (pairs for EDA,
 * triples for IDA): an analysis, not a search for known shapes. The approximations all go one way, towards
 * refusing: a counted repeat over 16 counts as a loop (smaller ones are unrolled as V8 counts them), the
 * loops of nested quantifiers stay distinct (V8 backtracks through each), a lookaround's content is checked
 * as a pattern of its own and is otherwise transparent, a Unicode property class may match anything, and a
 * pattern too large to analyse within the work budget is refused. Backreferences (which make matching NP-hard) are refused outright.
 *
 * A pattern with neither ambiguity still costs O(n) per match attempt, and a JSON Schema pattern is a
 * search: unanchored, V8 tries every start, which is O(n²). `boundedRegExp` (ajv's regex engine for the
 * catalog) bounds that: a pattern not anchored at the start is run only on strings up to
 * PATTERN_SEARCH_CAP characters; a longer string is left to the worker's own check.
 */

/** Strings a pattern not anchored with `^` is run on, at most (longer ones are not checked by the manager). */
export const PATTERN_SEARCH_CAP = 4096;
/** Steps the analysis of one pattern may take; a pattern needing more is refused as too complex (~50 ms). */
export const PATTERN_WORK_BUDGET = 400_000;
const MAX_CODE_POINT = 0x10ffff;

/** A set of code points as sorted, disjoint, inclusive ranges. */
type CharSet = readonly (readonly [number, number])[];
const ANY: CharSet = [[0, MAX_CODE_POINT]];

type Node =
  | { kind: 'chars'; set: CharSet }
  | { kind: 'empty' }
  | { kind: 'seq'; items: Node[] }
  | { kind: 'alt'; branches: Node[] }
  | { kind: 'repeat'; body: Node; min: number; max: number };

export interface PatternVerdict {
  safe: boolean;
  /** Why not, for the refusal message. */
  reason?: string;
  /** Every top-level branch starts with `^`: one match attempt, no search. */
  anchored: boolean;
}

class Unsafe extends Error {}

// ---- character sets -------------------------------------------------------------------------------------

function normalize(ranges: [number, number][]): CharSet {
  const sorted = ranges.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function complement(set: CharSet): CharSet {
  const out: [number, number][] = [];
  let next = 0;
  for (const [a, b] of set) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

function intersect(x: CharSet, y: CharSet): CharSet {
  const out: [number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const [a1, b1] = x[i]!;
    const [a2, b2] = y[j]!;
    const lo = Math.max(a1, a2);
    const hi = Math.min(b1, b2);
    if (lo <= hi) out.push([lo, hi]);
    if (b1 < b2) i++;
    else j++;
  }
  return out;
}

const code = (c: string): [number, number] => [c.codePointAt(0)!, c.codePointAt(0)!];
const DIGIT: CharSet = [[48, 57]];
const WORD: CharSet = normalize([
  [48, 57],
  [65, 90],
  [95, 95],
  [97, 122],
]);
const SPACE: CharSet = normalize([
  [9, 13],
  [32, 32],
  [160, 160],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
const LINE_TERMINATORS: CharSet = normalize([
  [10, 10],
  [13, 13],
  [0x2028, 0x2029],
]);
const DOT = complement(LINE_TERMINATORS);

// ---- parser ---------------------------------------------------------------------------------------------

/** A recursive-descent parser of ECMAScript (`u` mode) pattern syntax into the few shapes the analysis needs. */
class Parser {
  private i = 0;
  /** Lookaround contents, analysed as patterns of their own. */
  readonly lookarounds: Node[] = [];

  constructor(private readonly src: string) {}

  parse(): Node {
    const node = this.alternation();
    if (this.i < this.src.length) throw new Unsafe(`unexpected "${this.src[this.i]}" at ${this.i}`);
    return node;
  }

  /** True when every top-level branch begins with `^`. */
  static anchored(src: string): boolean {
    let depth = 0;
    let inClass = false;
    let branchStart = true;
    for (let i = 0; i < src.length; i++) {
      const c = src[i];
      if (branchStart && c !== '^') return false;
      branchStart = false;
      if (c === '\\') i++;
      else if (inClass) inClass = c !== ']';
      else if (c === '[') inClass = true;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
      else if (c === '|' && depth === 0) branchStart = true;
    }
    return !branchStart;
  }

  private peek(): string | undefined {
    return this.src[this.i];
  }

  private alternation(): Node {
    const branches = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      branches.push(this.sequence());
    }
    return branches.length === 1 ? branches[0]! : { kind: 'alt', branches };
  }

  private sequence(): Node {
    const items: Node[] = [];
    for (let c = this.peek(); c !== undefined && c !== '|' && c !== ')'; c = this.peek()) {
      items.push(this.quantified(this.atom()));
    }
    return { kind: 'seq', items };
  }

  private quantified(atom: Node): Node {
    const c = this.peek();
    let min: number;
    let max: number;
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
      if (!m) return atom; // a literal `{` outside u-mode; ajv's compile decides whether it is valid
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.i += m[0].length - 1;
    } else return atom;
    this.i++;
    if (this.peek() === '?') this.i++; // lazy: the same NFA, explored in another order
    return { kind: 'repeat', body: atom, min, max };
  }

  private atom(): Node {
    const c = this.src[this.i++]!;
    switch (c) {
      case '^':
      case '$':
        return { kind: 'empty' };
      case '.':
        return { kind: 'chars', set: DOT };
      case '[':
        return { kind: 'chars', set: this.charClass() };
      case '(':
        return this.group();
      case '\\':
        return this.escape();
      default: {
        const cp = this.src.codePointAt(this.i - 1)!;
        if (cp > 0xffff) this.i++;
        return { kind: 'chars', set: [[cp, cp]] };
      }
    }
  }

  private group(): Node {
    let lookaround = false;
    if (this.src.startsWith('?:', this.i)) this.i += 2;
    else if (/^\?<?[=!]/.test(this.src.slice(this.i, this.i + 3))) {
      lookaround = true;
      this.i += this.src[this.i + 1] === '<' ? 3 : 2;
    } else if (this.src.startsWith('?<', this.i)) {
      const end = this.src.indexOf('>', this.i);
      if (end < 0) throw new Unsafe('unterminated group name');
      this.i = end + 1;
    } else if (this.peek() === '?') throw new Unsafe(`unsupported group syntax at ${this.i}`);
    const body = this.alternation();
    if (this.src[this.i++] !== ')') throw new Unsafe('unterminated group');
    if (!lookaround) return body;
    // A lookaround matches no characters of its own; what it runs is checked as its own pattern.
    this.lookarounds.push(body);
    return { kind: 'empty' };
  }

  private escape(): Node {
    const c = this.src[this.i];
    if (c === 'b' || c === 'B') {
      this.i++;
      return { kind: 'empty' };
    }
    if (c !== undefined && /[1-9]/.test(c)) throw new Unsafe('a backreference');
    if (c === 'k' && this.src[this.i + 1] === '<') throw new Unsafe('a backreference');
    return { kind: 'chars', set: this.escapeSet() };
  }

  /** The set of one escape (after the backslash), in or out of a class. */
  private escapeSet(): CharSet {
    const c = this.src[this.i++];
    switch (c) {
      case undefined:
        throw new Unsafe('a trailing backslash');
      case 'd':
        return DIGIT;
      case 'D':
        return complement(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return complement(WORD);
      case 's':
        return SPACE;
      case 'S':
        return complement(SPACE);
      case 'p':
      case 'P': {
        // A Unicode property: taken as "may match anything", which can only make the verdict stricter.
        if (this.peek() === '{') {
          const end = this.src.indexOf('}', this.i);
          if (end < 0) throw new Unsafe('unterminated property escape');
          this.i = end + 1;
        }
        return ANY;
      }
      case 'n':
        return [code('\n')];
      case 'r':
        return [code('\r')];
      case 't':
        return [code('\t')];
      case 'f':
        return [code('\f')];
      case 'v':
        return [code('\v')];
      case '0':
        return [[0, 0]];
      case 'c': {
        const letter = this.src.codePointAt(this.i++) ?? 0;
        return [[letter % 32, letter % 32]];
      }
      case 'x': {
        const hex = this.src.slice(this.i, this.i + 2);
        this.i += 2;
        const v = parseInt(hex, 16);
        return [[v, v]];
      }
      case 'u': {
        const braced = /^\{([0-9a-fA-F]+)\}/.exec(this.src.slice(this.i));
        const hex = braced ? braced[1]! : this.src.slice(this.i, this.i + 4);
        this.i += braced ? braced[0].length : 4;
        const v = Math.min(MAX_CODE_POINT, parseInt(hex, 16) || 0);
        return [[v, v]];
      }
      default:
        return [code(c)];
    }
  }

  private charClass(): CharSet {
    const negated = this.peek() === '^';
    if (negated) this.i++;
    const ranges: [number, number][] = [];
    const one = (): CharSet => {
      const c = this.src[this.i];
      if (c === undefined) throw new Unsafe('unterminated character class');
      if (c === '\\') {
        this.i++;
        if (this.peek() === 'b') {
          this.i++;
          return [[8, 8]];
        }
        return this.escapeSet();
      }
      const cp = this.src.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      return [[cp, cp]];
    };
    while (this.peek() !== ']') {
      const from = one();
      if (this.peek() === '-' && this.src[this.i + 1] !== ']' && this.src[this.i + 1] !== undefined) {
        this.i++;
        const to = one();
        const single = (s: CharSet) => (s.length === 1 && s[0]![0] === s[0]![1] ? s[0]![0] : undefined);
        const a = single(from);
        const b = single(to);
        // A range between classes (`[\w-x]`) is a syntax error in u-mode; taken as the union otherwise.
        if (a !== undefined && b !== undefined) ranges.push([a, b]);
        else
          ranges.push(
            ...from.map(([x, y]) => [x, y] as [number, number]),
            ...to.map(([x, y]) => [x, y] as [number, number]),
            [45, 45],
          );
      } else ranges.push(...from.map(([x, y]) => [x, y] as [number, number]));
    }
    this.i++;
    const set = normalize(ranges);
    return negated ? complement(set) : set;
  }
}

// ---- position automaton ---------------------------------------------------------------------------------

/**
 * The pattern's positions and the edges between them. An edge carries the loop that made it (0: plain
 * sequence): V8 backtracks through each loop separately, so in `(a+)+` the inner and the outer loop are two
 * different ways from `a` back to `a`, although a textbook position automaton would merge them.
 */
interface Automaton {
  /** Position 0 is the start; positions 1.. are the character sets of the pattern. */
  sets: CharSet[];
  /** Per position: target → the loops (0 for none) whose edges lead there. */
  edges: Map<number, Set<number>>[];
}

interface Fragment {
  nullable: boolean;
  first: Set<number>;
  last: Set<number>;
}

/** Counted repeats up to this are unrolled exactly (`x{4}`, `\d{1,3}`); larger ones are taken as loops. */
const MAX_UNROLL = 16;

function build(root: Node, budget: Budget): Automaton {
  const sets: CharSet[] = [[]];
  const edges: Map<number, Set<number>>[] = [new Map()];
  let loops = 0;
  const link = (from: Iterable<number>, to: Iterable<number>, tag: number) => {
    for (const f of from)
      for (const t of to) {
        const m = edges[f]!;
        let tags = m.get(t);
        if (!tags) m.set(t, (tags = new Set()));
        tags.add(tag);
      }
  };
  const EMPTY = (): Fragment => ({ nullable: true, first: new Set(), last: new Set() });
  const concat = (acc: Fragment, f: Fragment): Fragment => {
    link(acc.last, f.first, 0);
    return {
      nullable: acc.nullable && f.nullable,
      first: acc.nullable ? new Set([...acc.first, ...f.first]) : acc.first,
      last: f.nullable ? new Set([...acc.last, ...f.last]) : f.last,
    };
  };
  const optional = (f: Fragment): Fragment => ({ ...f, nullable: true });
  const loop = (f: Fragment): Fragment => {
    link(f.last, f.first, ++loops);
    return f;
  };
  const visit = (n: Node): Fragment => {
    budget.spend();
    switch (n.kind) {
      case 'empty':
        return EMPTY();
      case 'chars': {
        const p = sets.length;
        sets.push(n.set);
        edges.push(new Map());
        return { nullable: false, first: new Set([p]), last: new Set([p]) };
      }
      case 'alt': {
        const parts = n.branches.map(visit);
        return {
          nullable: parts.some((f) => f.nullable),
          first: new Set(parts.flatMap((f) => [...f.first])),
          last: new Set(parts.flatMap((f) => [...f.last])),
        };
      }
      case 'seq':
        return n.items.reduce((acc, item) => concat(acc, visit(item)), EMPTY());
      case 'repeat': {
        const { min, max, body } = n;
        if (max === 0) return EMPTY();
        if (max === 1) return min === 0 ? optional(visit(body)) : visit(body);
        const counted = max === Infinity ? min : max;
        if (counted > MAX_UNROLL) {
          // Taken as a loop: only more behaviours, so only a stricter verdict.
          const f = loop(visit(body));
          return min === 0 ? optional(f) : f;
        }
        // Unrolled like V8 counts: min copies, then nested optional ones, x(x(x)?)?, or a final loop.
        let acc = EMPTY();
        const mandatory = max === Infinity ? Math.max(0, min - 1) : min;
        for (let k = 0; k < mandatory; k++) acc = concat(acc, visit(body));
        if (max === Infinity) {
          const f = loop(visit(body));
          return concat(acc, min === 0 ? optional(f) : f);
        }
        const tail = (k: number): Fragment =>
          k === 0 ? EMPTY() : optional(concat(visit(body), tail(k - 1)));
        return concat(acc, tail(max - min));
      }
    }
  };
  const whole = visit(root);
  link([0], whole.first, 0);
  return { sets, edges };
}

/** Memoised "do these positions' sets share a character". */
function overlapTable(a: Automaton): (x: number, y: number) => boolean {
  const memo = new Map<number, boolean>();
  const n = a.sets.length;
  return (x, y) => {
    const key = x < y ? x * n + y : y * n + x;
    let v = memo.get(key);
    if (v === undefined) memo.set(key, (v = intersect(a.sets[x]!, a.sets[y]!).length > 0));
    return v;
  };
}

/** Analysis steps left; one budget can be shared by all the patterns of a hello, bounding the stall. */
export class PatternBudget {
  constructor(
    private left: number,
    private readonly parent?: PatternBudget,
  ) {}
  spend(): void {
    if (--this.left < 0) throw new Unsafe('too complex to analyse');
    this.parent?.spend();
  }
}
type Budget = PatternBudget;

type Edge = readonly [target: number, tag: number];

function edgeLists(a: Automaton): Edge[][] {
  return a.edges.map((m) => [...m].flatMap(([t, tags]) => [...tags].map((tag) => [t, tag] as const)));
}

/**
 * EDA: two different paths from some (q,q) back to itself in the pair automaton: a strongly connected
 * component holding a diagonal pair and either an off-diagonal pair or an edge where the two paths differ.
 */
function hasExponentialAmbiguity(
  a: Automaton,
  overlaps: (x: number, y: number) => boolean,
  budget: Budget,
): boolean {
  const n = a.sets.length;
  const edges = edgeLists(a);
  const succ = new Map<number, { to: number; diverging: boolean }[]>();
  const successors = (state: number) => {
    let out = succ.get(state);
    if (out) return out;
    out = [];
    for (const [x, tx] of edges[Math.floor(state / n)]!)
      for (const [y, ty] of edges[state % n]!) {
        budget.spend();
        if (overlaps(x, y)) out.push({ to: x * n + y, diverging: x !== y || tx !== ty });
      }
    succ.set(state, out);
    return out;
  };
  // Tarjan's SCC, iterative (a pattern may be long), over the pairs reachable from (start, start).
  const index = new Map<number, number>();
  const low = new Map<number, number>();
  const component = new Map<number, number>();
  const onStack = new Set<number>();
  const stack: number[] = [];
  let counter = 0;
  const work: { state: number; i: number }[] = [];
  const open = (state: number) => {
    index.set(state, counter);
    low.set(state, counter++);
    stack.push(state);
    onStack.add(state);
    work.push({ state, i: 0 });
  };
  open(0);
  while (work.length > 0) {
    const top = work[work.length - 1]!;
    const next = successors(top.state);
    if (top.i < next.length) {
      const s = next[top.i++]!.to;
      if (!index.has(s)) open(s);
      else if (onStack.has(s)) low.set(top.state, Math.min(low.get(top.state)!, index.get(s)!));
      continue;
    }
    work.pop();
    const parent = work[work.length - 1];
    if (parent) low.set(parent.state, Math.min(low.get(parent.state)!, low.get(top.state)!));
    if (low.get(top.state) !== index.get(top.state)) continue;
    let s: number;
    do {
      s = stack.pop()!;
      onStack.delete(s);
      component.set(s, top.state);
    } while (s !== top.state);
  }
  const hasDiagonal = new Set<number>();
  for (const [state, c] of component) if (Math.floor(state / n) === state % n) hasDiagonal.add(c);
  for (const [state, c] of component) {
    if (!hasDiagonal.has(c)) continue;
    const offDiagonal = Math.floor(state / n) !== state % n;
    for (const e of successors(state)) {
      // An edge inside the component closes a cycle through it.
      if (component.get(e.to) === c && (offDiagonal || e.diverging)) return true;
    }
  }
  return false;
}

/** IDA: positions p != q and a string w with p ->w p, p ->w q, q ->w q: (p,p,q) reaches (p,q,q). */
function hasPolynomialAmbiguity(
  a: Automaton,
  overlaps: (x: number, y: number) => boolean,
  budget: Budget,
): boolean {
  const n = a.sets.length;
  const follow = a.edges.map((m) => [...m.keys()]);
  // What each position reaches (one or more steps): p and q must be on loops, and q reachable from p.
  const reach = (p: number): Set<number> => {
    const seen = new Set<number>();
    const todo = [...follow[p]!];
    while (todo.length > 0) {
      const x = todo.pop()!;
      budget.spend();
      if (seen.has(x)) continue;
      seen.add(x);
      todo.push(...follow[x]!);
    }
    return seen;
  };
  const reaches = a.sets.map((_, p) => (p > 0 ? reach(p) : new Set<number>()));
  const looping = [...Array(n).keys()].filter((p) => p > 0 && reaches[p]!.has(p));
  const triples = new Map<number, boolean>();
  const common3 = (x: number, y: number, z: number): boolean => {
    if (!overlaps(x, y) || !overlaps(y, z) || !overlaps(x, z)) return false;
    const [i, j, k] = [x, y, z].sort((u, v) => u - v) as [number, number, number];
    const key = (i * n + j) * n + k;
    let v = triples.get(key);
    if (v === undefined)
      triples.set(key, (v = intersect(intersect(a.sets[i]!, a.sets[j]!), a.sets[k]!).length > 0));
    return v;
  };
  for (const p of looping) {
    for (const q of looping) {
      if (p === q || !reaches[p]!.has(q)) continue;
      const target = (p * n + q) * n + q;
      const seen = new Set<number>();
      const todo: [number, number, number][] = [[p, p, q]];
      while (todo.length > 0) {
        const [x, y, z] = todo.pop()!;
        for (const x2 of follow[x]!)
          for (const y2 of follow[y]!) {
            if (!overlaps(x2, y2)) continue;
            for (const z2 of follow[z]!) {
              budget.spend();
              if (!common3(x2, y2, z2)) continue;
              const key = (x2 * n + y2) * n + z2;
              if (key === target) return true;
              if (seen.has(key)) continue;
              seen.add(key);
              todo.push([x2, y2, z2]);
            }
          }
      }
    }
  }
  return false;
}

/** Whether the manager may run `pattern` on submitted strings, and whether it is anchored at the start. */
export function checkPattern(pattern: string, shared?: PatternBudget): PatternVerdict {
  const anchored = Parser.anchored(pattern);
  try {
    const parser = new Parser(pattern);
    const patterns = [parser.parse()];
    const budget = new PatternBudget(PATTERN_WORK_BUDGET, shared);
    for (let i = 0; i < patterns.length; i++) {
      const automaton = build(patterns[i]!, budget);
      const overlaps = overlapTable(automaton);
      if (hasExponentialAmbiguity(automaton, overlaps, budget))
        return { safe: false, anchored, reason: 'it can backtrack exponentially' };
      if (hasPolynomialAmbiguity(automaton, overlaps, budget))
        return { safe: false, anchored, reason: 'it can backtrack polynomially' };
      if (i === 0) patterns.push(...parser.lookarounds);
    }
    return { safe: true, anchored };
  } catch (err) {
    if (err instanceof Unsafe) return { safe: false, anchored, reason: err.message };
    throw err;
  }
}

/**
 * ajv's regex engine for the catalog: a pattern that is not anchored at the start is a search (V8 tries every
 * start position), so it runs only on strings up to PATTERN_SEARCH_CAP characters; longer ones pass here and
 * are left to the worker's own check (the catalog is looser than the handler, never stricter).
 */
export const boundedRegExp = Object.assign(
  (pattern: string, flags: string) => {
    const re = new RegExp(pattern, flags);
    const anchored = Parser.anchored(pattern);
    return {
      test: (s: string) => (anchored || s.length <= PATTERN_SEARCH_CAP ? re.test(s) : true),
      // ajv keys its compiled patterns by this string: it must tell two patterns apart.
      toString: () => re.toString(),
    };
  },
  { code: 'boundedRegExp' },
);
