/**
 * Segment's Filter Query Language (segment-compat.md §3.6, Segment's FQL reference): parser and
 * evaluator. Fields are dotted paths from the message root (`properties.total`,
 * `context.traits.email`; `\` escapes any other character); strings in `"` or `'`; operators
 * `and`, `or`, `!`, `=`, `!=`, `<`, `<=`, `>`, `>=`, `in` (a `[list]` or a field holding a list);
 * functions `contains` (strings), `match` (glob: `*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\x`),
 * `length` (bytes of a string, items of a list), `lowercase`, `uppercase`, `snakecase`,
 * `kebabcase`, `titlecase`, `typeof` (`string`, `number`, `bool`, `list`, `object`, `null`),
 * `bool`, `string`, `number`. Null rules: a missing field is null; `contains`/`match` on null
 * are false, `length(null)` is 0, the other functions answer null; comparisons other than
 * `=`/`!=` with a non-number are false. `all` matches everything. Checked against Segment's
 * `@segment/tsub` and `@segment/destination-subscriptions` (fql.differential.test.ts).
 */

export type FqlValue = string | number | boolean | null | FqlValue[] | { [key: string]: FqlValue };

/** The syntax tree (exported for the differential tests, which compile it to tsub's IR). */
export type FqlNode = Node;

type Node =
  | { kind: 'literal'; value: FqlValue }
  | { kind: 'field'; path: string[] }
  | { kind: 'list'; items: Node[] }
  | { kind: 'not'; operand: Node }
  | { kind: 'logic'; op: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'compare'; op: '=' | '!=' | '<' | '<=' | '>' | '>='; left: Node; right: Node }
  | { kind: 'in'; left: Node; list: Node }
  | { kind: 'call'; name: FunctionName; args: Node[] };

const FUNCTIONS = {
  contains: 2,
  match: 2,
  length: 1,
  lowercase: 1,
  uppercase: 1,
  snakecase: 1,
  kebabcase: 1,
  titlecase: 1,
  typeof: 1,
  bool: 1,
  string: 1,
  number: 1,
} as const;
type FunctionName = keyof typeof FUNCTIONS;

export class FqlSyntaxError extends Error {
  constructor(
    readonly expression: string,
    detail: string,
  ) {
    super(`FQL ${JSON.stringify(expression)}: ${detail}`);
    this.name = 'FqlSyntaxError';
  }
}

type Token =
  | { t: 'str'; v: string; at: number }
  | { t: 'num'; v: number; at: number }
  | { t: 'word'; v: string; escaped: boolean; at: number }
  | { t: 'op'; v: string; at: number };

const OPERATORS = ['!=', '<=', '>=', '=', '<', '>', '!', '(', ')', '[', ']', ','];
const WORD_CHAR = /[A-Za-z0-9_.$@-]/;
/** Stands for `\.` inside a field name until the name is split into path segments. */
const ESCAPED_DOT = '\u0000';

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (detail: string): never => {
    throw new FqlSyntaxError(text, detail);
  };
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'") {
      const at = i++;
      let v = '';
      while (i < text.length && text[i] !== c) {
        // `\` before the closing quote escapes it; any other `\` stays (a glob's `\*` keeps its escape).
        if (text[i] === '\\' && text[i + 1] === c) i++;
        v += text[i++];
      }
      if (i >= text.length) fail(`unterminated string at position ${at + 1}`);
      i++;
      tokens.push({ t: 'str', v, at });
    } else if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))!;
      tokens.push({ t: 'num', v: Number(m[0]), at: i });
      i += m[0].length;
    } else if (WORD_CHAR.test(c) || c === '\\') {
      const at = i;
      let v = '';
      let escaped = false;
      while (i < text.length && (WORD_CHAR.test(text[i]) || text[i] === '\\')) {
        if (text[i] === '\\') {
          if (i + 1 >= text.length) fail('a field ends with an escape character');
          // An escaped dot is part of the name, not a path separator: keep it marked.
          v += text[i + 1] === '.' ? ESCAPED_DOT : text[i + 1];
          escaped = true;
          i += 2;
        } else {
          v += text[i++];
        }
      }
      tokens.push({ t: 'word', v, escaped, at });
    } else {
      const op = OPERATORS.find((o) => text.startsWith(o, i));
      if (!op) fail(`unexpected '${c}' at position ${i + 1}`);
      tokens.push({ t: 'op', v: op!, at: i });
      i += op!.length;
    }
  }
  return tokens;
}

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  parse(): Node {
    if (this.tokens.length === 0) this.fail('empty expression');
    const node = this.or();
    if (this.i < this.tokens.length) this.fail(`unexpected ${this.describe(this.tokens[this.i])}`);
    return node;
  }

  private fail(detail: string): never {
    throw new FqlSyntaxError(this.text, detail);
  }

  private describe(token: Token | undefined): string {
    return token ? `'${String(token.v)}' at position ${token.at + 1}` : 'end of expression';
  }

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }

  private isWord(v: string): boolean {
    const t = this.peek();
    return t?.t === 'word' && !t.escaped && t.v === v;
  }

  private isOp(v: string): boolean {
    const t = this.peek();
    return t?.t === 'op' && t.v === v;
  }

  private expectOp(v: string): void {
    if (!this.isOp(v)) this.fail(`expected '${v}', found ${this.describe(this.peek())}`);
    this.i++;
  }

  private or(): Node {
    return this.logic('or', () => this.and());
  }

  private and(): Node {
    return this.logic('and', () => this.not());
  }

  /** Left-associative chain of `op` over what `next` parses (`and` binds tighter than `or`). */
  private logic(op: 'and' | 'or', next: () => Node): Node {
    let left = next();
    while (this.isWord(op)) {
      this.i++;
      left = { kind: 'logic', op, left, right: next() };
    }
    return left;
  }

  private not(): Node {
    if (this.isOp('!')) {
      this.i++;
      return { kind: 'not', operand: this.not() };
    }
    return this.comparison();
  }

  private comparison(): Node {
    const left = this.operand();
    const t = this.peek();
    if (t?.t === 'op' && ['=', '!=', '<', '<=', '>', '>='].includes(t.v)) {
      this.i++;
      return { kind: 'compare', op: t.v as '=', left, right: this.operand() };
    }
    if (this.isWord('in')) {
      this.i++;
      // A list literal, or a field (or function) that holds a list at evaluation time.
      const at = this.peek();
      const list = this.operand();
      if (list.kind === 'literal') this.fail(`in needs a [list] or a field, found ${this.describe(at)}`);
      return { kind: 'in', left, list };
    }
    return left;
  }

  private list(): Node {
    this.expectOp('[');
    const items: Node[] = [];
    while (!this.isOp(']')) {
      items.push(this.operand());
      if (!this.isOp(']')) this.expectOp(',');
    }
    this.i++;
    return { kind: 'list', items };
  }

  private operand(): Node {
    const t = this.peek();
    if (!t) this.fail('unexpected end of expression');
    this.i++;
    if (t.t === 'str' || t.t === 'num') return { kind: 'literal', value: t.v };
    if (t.t === 'op') {
      if (t.v === '(') {
        const inner = this.or();
        this.expectOp(')');
        return inner;
      }
      if (t.v === '[') {
        this.i--;
        return this.list();
      }
      this.fail(`unexpected ${this.describe(t)}`);
    }
    if (!t.escaped) {
      if (t.v === 'true' || t.v === 'false') return { kind: 'literal', value: t.v === 'true' };
      if (t.v === 'null') return { kind: 'literal', value: null };
      if (this.isOp('(')) {
        if (!Object.hasOwn(FUNCTIONS, t.v)) this.fail(`unknown function '${t.v}' at position ${t.at + 1}`);
        const name = t.v as FunctionName;
        this.i++;
        const args: Node[] = [];
        while (!this.isOp(')')) {
          args.push(this.or());
          if (!this.isOp(')')) this.expectOp(',');
        }
        this.i++;
        if (args.length !== FUNCTIONS[name]) this.fail(`${name}() takes ${FUNCTIONS[name]} argument(s), got ${args.length}`);
        return { kind: 'call', name, args };
      }
    }
    return { kind: 'field', path: t.v.split('.').map((s) => s.replaceAll(ESCAPED_DOT, '.')) };
  }
}

/** A compiled expression: `matches(message)` is true, false, or throws FqlEvaluationError. */
export interface FqlExpression {
  readonly text: string;
  matches(message: unknown): boolean;
}

export class FqlEvaluationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FqlEvaluationError';
  }
}

/** The syntax tree of `text` (`all` is the literal true); throws FqlSyntaxError naming the problem. */
export function parseFql(text: string): FqlNode {
  if (text.trim() === 'all') return { kind: 'literal', value: true };
  return new Parser(text, tokenize(text)).parse();
}

/** Parses `text` once; the expression is then evaluated per message. */
export function compileFql(text: string): FqlExpression {
  const root = parseFql(text);
  return { text, matches: (message) => truthy(evaluate(root, message)) };
}

function truthy(value: FqlValue): boolean {
  return value === true;
}

function lookup(message: unknown, path: string[]): FqlValue {
  let current: unknown = message;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, key)) return null;
    current = (current as Record<string, unknown>)[key];
  }
  return current === undefined ? null : (current as FqlValue);
}

function equal(a: FqlValue, b: FqlValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function words(s: string): string[] {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
}

const codePoint = (c: string): string => `\\u{${c.codePointAt(0)!.toString(16)}}`;

/**
 * Segment's glob (segmentio/glob, ported by tsub): `*` any run of characters (`/` included), `?`
 * one character, `[abc]`, `[a-z]`, `[^a-z]`, `\x` the character x; the whole string must match.
 * A malformed pattern (a trailing `\`, an unclosed or empty class) matches nothing, as there.
 */
function globRegExp(pattern: string): RegExp | null {
  const chars = Array.from(pattern);
  let source = '';
  let i = 0;
  // One possibly-escaped character of a class; null when the class is malformed.
  const classChar = (): string | null => {
    let c = chars[i];
    if (c === undefined || c === '-' || c === ']') return null;
    if (c === '\\') c = chars[++i];
    if (c === undefined || i + 1 >= chars.length) return null;
    i++;
    return c;
  };
  while (i < chars.length) {
    const c = chars[i];
    if (c === '*') {
      source += '[^]*';
      i++;
    } else if (c === '?') {
      source += '[^]';
      i++;
    } else if (c === '\\') {
      if (i + 1 >= chars.length) return null;
      source += codePoint(chars[i + 1]);
      i += 2;
    } else if (c === '[') {
      i++;
      const negated = chars[i] === '^';
      if (negated) i++;
      const ranges: string[] = [];
      let count = 0;
      while (!(chars[i] === ']' && count > 0)) {
        const lo = classChar();
        if (lo === null) return null;
        let hi = lo;
        if (chars[i] === '-') {
          i++;
          const end = classChar();
          if (end === null) return null;
          hi = end;
        }
        count++;
        // A reversed range matches nothing (not a RegExp error).
        if (lo.codePointAt(0)! <= hi.codePointAt(0)!) ranges.push(`${codePoint(lo)}-${codePoint(hi)}`);
      }
      i++;
      const set = ranges.join('');
      source += negated ? (set ? `[^${set}]` : '[^]') : set ? `[${set}]` : '(?!)';
    } else {
      source += codePoint(c);
      i++;
    }
  }
  return new RegExp(`^${source}$`, 'u');
}

/** Compiled globs by pattern: patterns are nearly always literals, so they repeat. */
const globs = new Map<string, RegExp | null>();
const GLOB_CACHE_LIMIT = 1000;

function glob(value: string, pattern: string): boolean {
  let re = globs.get(pattern);
  if (re === undefined) {
    re = globRegExp(pattern);
    if (globs.size >= GLOB_CACHE_LIMIT) globs.clear();
    globs.set(pattern, re);
  }
  return re !== null && re.test(value);
}

function typeName(v: FqlValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

function call(name: FunctionName, args: FqlValue[]): FqlValue {
  const [a, b] = args;
  switch (name) {
    case 'contains':
      return typeof a === 'string' && typeof b === 'string' && a.includes(b);
    case 'match':
      return typeof a === 'string' && typeof b === 'string' ? glob(a, b) : false;
    case 'length':
      // Segment's docs: null is 0; an object, number or bool has no length (NaN: never equal, never compares).
      return typeof a === 'string' ? Buffer.byteLength(a) : Array.isArray(a) ? a.length : a === null ? 0 : NaN;
    case 'lowercase':
      return typeof a === 'string' ? a.toLowerCase() : null;
    case 'uppercase':
      return typeof a === 'string' ? a.toUpperCase() : null;
    case 'snakecase':
      return typeof a === 'string'
        ? words(a)
            .map((w) => w.toLowerCase())
            .join('_')
        : null;
    case 'kebabcase':
      return typeof a === 'string'
        ? words(a)
            .map((w) => w.toLowerCase())
            .join('-')
        : null;
    case 'titlecase':
      return typeof a === 'string'
        ? words(a)
            .map((w) => w[0].toUpperCase() + w.slice(1).toLowerCase())
            .join(' ')
        : null;
    case 'typeof':
      return typeName(a);
    case 'bool':
      if (typeof a === 'boolean') return a;
      if (typeof a === 'number') return a !== 0;
      if (typeof a === 'string') return a === 'true' ? true : a === 'false' ? false : null;
      return null;
    case 'string':
      if (a === null) return null;
      return typeof a === 'string' ? a : JSON.stringify(a);
    case 'number': {
      if (typeof a === 'number') return a;
      if (typeof a === 'boolean') return a ? 1 : 0;
      if (typeof a === 'string' && a.trim() !== '' && Number.isFinite(Number(a))) return Number(a);
      return null;
    }
  }
}

function evaluate(node: Node, message: unknown): FqlValue {
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'field':
      return lookup(message, node.path);
    case 'list':
      return node.items.map((item) => evaluate(item, message));
    case 'not':
      return !truthy(evaluate(node.operand, message));
    case 'logic': {
      const left = truthy(evaluate(node.left, message));
      if (node.op === 'and') return left && truthy(evaluate(node.right, message));
      return left || truthy(evaluate(node.right, message));
    }
    case 'compare': {
      const [l, r] = [evaluate(node.left, message), evaluate(node.right, message)];
      if (node.op === '=') return equal(l, r);
      if (node.op === '!=') return !equal(l, r);
      if (typeof l !== 'number' || typeof r !== 'number') return false;
      if (node.op === '<') return l < r;
      if (node.op === '<=') return l <= r;
      if (node.op === '>') return l > r;
      return l >= r;
    }
    case 'in': {
      const list = evaluate(node.list, message);
      if (list === null) return false; // a missing list holds nothing (null rules)
      if (!Array.isArray(list)) throw new FqlEvaluationError(`in needs a list, found ${typeName(list)}`);
      const value = evaluate(node.left, message);
      return list.some((item) => equal(value, item));
    }
    case 'call':
      return call(
        node.name,
        node.args.map((a) => evaluate(a, message)),
      );
  }
}
