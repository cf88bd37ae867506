// Differential tests: our FQL (src/fql.ts) and filter actions (src/filters.ts) against Segment's
// own code. Destination filters: @segment/tsub (the evaluator analytics.js runs on the IR that
// Segment compiles FQL to) — we compile our syntax tree to that IR. Subscriptions:
// @segment/destination-subscriptions (parseFql + validate, what actions-core runs per
// subscription). Many generated (expression, event) pairs, same answer required; where a library
// departs from Segment's FQL reference (a bug or a narrower dialect), the pair is kept out of the
// generated set and the departure is pinned below as a documented case. ~1 s.
import { matches as tsubMatches, transform as tsubTransform } from '@segment/tsub';
import { parseFql as subscriptionParse, validate as subscriptionValidate } from '@segment/destination-subscriptions';
import type { FilterRule } from '@cdp/workspace';
import { applyFilterRules } from './filters';
import { compileFql, FqlEvaluationError, parseFql, type FqlNode, type FqlValue } from './fql';

/** A seeded generator (mulberry32), so a failure names a reproducible case. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EVENTS: Record<string, unknown>[] = [
  {
    type: 'track',
    event: 'Order Completed',
    userId: 'user_42',
    properties: { total: 25.5, count: 3, currency: 'USD', tags: ['a', 'b'], flag: true, num: '12', nested: { ok: true, n: 0 } },
    context: { library: { name: 'analytics.js', version: '1.0' }, ip: '1.2.3.4' },
  },
  {
    type: 'track',
    event: 'Order Refunded',
    userId: 'test_7',
    properties: { total: -3, count: 0, currency: 'usd', tags: [], flag: false, num: 12, nested: { ok: false, n: 12 } },
    context: { library: { name: 'analytics-node', version: '2.1.0' } },
  },
  { type: 'track', event: 'Signed Up', userId: null, anonymousId: 'anon-1', properties: {}, context: {} },
  { type: 'track', event: 'signed up', properties: { total: '25.5', count: '3', currency: null, flag: 'true', nested: null } },
  {
    type: 'identify',
    userId: 'Jane',
    traits: { email: 'jane@example.com', plan: 'pro', age: 31, vip: true },
    context: { traits: { email: 'x@y.z' } },
  },
  { type: 'identify', userId: 'bob', traits: { email: null, plan: '', age: '31', vip: 'true' } },
  {
    type: 'page',
    name: 'Home',
    userId: 'user_1',
    properties: { path: '/a/b', title: 'Home*' },
    context: { library: { name: 'analytics.js' } },
  },
  { type: 'screen', name: 'Checkout Step 2', anonymousId: 'a2', properties: { step: 2 } },
  { type: 'group', userId: 'user_9', groupId: 'g1', traits: { name: 'Acme', employees: 100 } },
  { type: 'alias', userId: 'new', previousId: 'old' },
  { type: 'track', event: 'Button Clicked', userId: 'ab*d', properties: { features: ['discounts', 'dark-mode'], total: 0, count: 1e3 } },
  { type: 'track', event: '', userId: '', properties: { total: 100, count: 100, currency: 'EUR', nested: { ok: 'yes', n: -1 } } },
  { type: 'track', event: 'Order Completed', userId: 'abCd', properties: { total: 20, currency: 'GBP', tags: ['x'], nested: [] } },
  { type: 'track', event: 'Order Completed', userId: 'abcd', properties: { total: 20.0001, currency: 'usd', nested: { ok: true } } },
  { type: 'track', event: 'Order Completed', userId: 42, properties: { total: null, count: null } },
  {},
];

const FIELDS = [
  'type',
  'event',
  'name',
  'userId',
  'anonymousId',
  'properties.total',
  'properties.count',
  'properties.currency',
  'properties.tags',
  'properties.flag',
  'properties.num',
  'properties.nested',
  'properties.nested.ok',
  'properties.nested.n',
  'properties.missing',
  'traits.email',
  'traits.plan',
  'traits.age',
  'traits.vip',
  'context.library.name',
  'context.library.version',
  'context.ip',
];
/** An FQL string literal: raw text between quotes (FQL strings have no escapes but `\"`). */
const quote = (s: string): string => `"${s}"`;
const STRINGS = [
  'track',
  'identify',
  'Order Completed',
  'USD',
  'usd',
  'user_42',
  'Jane',
  '',
  '12',
  '25.5',
  'true',
  'pro',
  'analytics.js',
  '1.0',
];
const NUMBERS = ['0', '3', '12', '20', '25.5', '-3', '100', '1000', '31', '1e3'];
const LITERALS = [...STRINGS.map(quote), ...NUMBERS, 'true', 'false', 'null'];
const PATTERNS = [
  '*',
  'user_*',
  '*_42',
  'test_?',
  'ab[cC]d',
  'ab[a-z]d',
  'ab[A-Z]d',
  'ab\\*d',
  'a??d',
  '*d',
  'Order *',
  '[^o]*',
  'analytics.*',
  '*.js',
  '1.*',
  '',
  '[]',
  '[a',
  'a[',
  '[z-a]*',
];
const SUBSTRINGS = ['Order', 'order', 'd', '', '_', '.js', 'pro', 'S', 'a', 'x'];

const pick = <T>(rnd: () => number, list: readonly T[]): T => list[Math.floor(rnd() * list.length)];

/** One condition of the full FQL (as tsub's IR can express it). */
function tsubCondition(rnd: () => number): string {
  const field = pick(rnd, FIELDS);
  switch (Math.floor(rnd() * 9)) {
    case 0:
    case 1:
      return `${field} ${pick(rnd, ['=', '!='])} ${pick(rnd, LITERALS)}`;
    case 2:
      return `${field} ${pick(rnd, ['<', '<=', '>', '>='])} ${pick(rnd, rnd() < 0.8 ? NUMBERS : LITERALS)}`;
    case 3:
      return `contains(${field}, ${quote(pick(rnd, SUBSTRINGS))})`;
    case 4:
      return `match(${field}, ${quote(pick(rnd, PATTERNS))})`;
    case 5:
      return `${field} in [${Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(rnd, LITERALS)).join(', ')}]`;
    case 6:
      return `lowercase(${field}) ${pick(rnd, ['=', '!='])} ${quote(pick(rnd, STRINGS))}`;
    case 7:
      return `length(${field}) ${pick(rnd, ['=', '!=', '<', '>', '>='])} ${pick(rnd, ['0', '1', '2', '3', '5', '12'])}`;
    default:
      return field; // a bare field: true only when it holds true
  }
}

/** and / or / ! over `leaf`, up to `depth` levels, parenthesised as needed. */
function combine(rnd: () => number, leaf: (rnd: () => number) => string, depth: number, negate = true): string {
  const r = rnd();
  if (depth === 0 || r < 0.35) return leaf(rnd);
  if (negate && r < 0.45) return `!(${combine(rnd, leaf, depth - 1, negate)})`;
  const op = rnd() < 0.5 ? 'and' : 'or';
  return `(${combine(rnd, leaf, depth - 1, negate)}) ${op} (${combine(rnd, leaf, depth - 1, negate)})`;
}

type TsubIr = string | { value: unknown } | TsubIr[];

/** Our syntax tree as tsub's IR: prefix arrays, paths as strings, literals as `{ value }`. */
function toTsubIr(node: FqlNode): TsubIr {
  const value = (n: FqlNode): TsubIr => {
    if (n.kind === 'list') return { value: n.items.map((i) => (i.kind === 'literal' ? i.value : null)) };
    return toTsubIr(n);
  };
  switch (node.kind) {
    case 'literal':
      return { value: node.value };
    case 'field':
      if (node.path.some((p) => p.includes('.'))) throw new Error('tsub paths cannot hold a dot');
      return node.path.join('.');
    case 'list':
      return node.items.map(toTsubIr);
    case 'not':
      return ['!', toTsubIr(node.operand)];
    case 'logic':
      return [node.op, toTsubIr(node.left), toTsubIr(node.right)];
    case 'compare':
      return [node.op, value(node.left), value(node.right)];
    case 'in':
      return ['in', toTsubIr(node.left), toTsubIr(node.list)];
    case 'call':
      if (!['contains', 'match', 'lowercase', 'length', 'typeof'].includes(node.name)) throw new Error(`tsub has no ${node.name}()`);
      return [node.name, ...node.args.map(toTsubIr)];
  }
}

function fields(node: FqlNode, out: string[][] = []): string[][] {
  if (node.kind === 'field') out.push(node.path);
  if (node.kind === 'list') node.items.forEach((i) => fields(i, out));
  if (node.kind === 'not') fields(node.operand, out);
  if (node.kind === 'logic' || node.kind === 'compare') [node.left, node.right].forEach((n) => fields(n, out));
  if (node.kind === 'in') [node.left, node.list].forEach((n) => fields(n, out));
  if (node.kind === 'call') node.args.forEach((n) => fields(n, out));
  return out;
}

function lookup(event: unknown, path: string[]): unknown {
  return path.reduce<unknown>(
    (v, k) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined),
    event,
  );
}

function mentions(node: FqlNode, test: (n: FqlNode) => boolean): boolean {
  if (test(node)) return true;
  const children: FqlNode[] =
    node.kind === 'list'
      ? node.items
      : node.kind === 'not'
        ? [node.operand]
        : node.kind === 'logic' || node.kind === 'compare'
          ? [node.left, node.right]
          : node.kind === 'in'
            ? [node.left, node.list]
            : node.kind === 'call'
              ? node.args
              : [];
  return children.some((c) => mentions(c, test));
}

/**
 * tsub reads a missing field as JavaScript's `undefined`, not FQL's null (Segment's reference:
 * "a missing field is null", `length(null)` is 0): `missing = null` is false there and
 * `length(missing)` is NaN. Pairs where that shows are left to the documented cases below.
 */
function tsubUndefinedShows(node: FqlNode, event: unknown): boolean {
  const missing = fields(node).some((p) => lookup(event, p) === undefined);
  if (!missing) return false;
  return mentions(node, (n) => (n.kind === 'literal' && n.value === null) || (n.kind === 'call' && n.name === 'length'));
}

function ours(text: string, event: unknown): boolean | 'error' {
  try {
    return compileFql(text).matches(event);
  } catch (error) {
    if (error instanceof FqlEvaluationError) return 'error';
    throw error;
  }
}

function tsub(ir: TsubIr, event: unknown): boolean | 'error' {
  try {
    return tsubMatches(event, { type: 'fql', ir: JSON.stringify(ir) });
  } catch {
    return 'error';
  }
}

/**
 * Ours against `theirs` (undefined: a pair left out) for each text × event: the first
 * differences, how many pairs were compared. The generated set must exercise both answers
 * broadly, not one trivial corner.
 */
function differential(texts: string[], name: string, theirs: (text: string, event: unknown) => boolean | 'error' | undefined) {
  let compared = 0;
  let trueAnswers = 0;
  const differences: string[] = [];
  for (const text of texts) {
    EVENTS.forEach((event, e) => {
      const b = theirs(text, event);
      if (b === undefined) return;
      const a = ours(text, event);
      compared++;
      if (a === true) trueAnswers++;
      if (a !== b && differences.length < 30) differences.push(`${text} on event ${e}: ours ${a}, ${name} ${b}`);
    });
  }
  expect(trueAnswers).toBeGreaterThan(compared / 5);
  expect(trueAnswers).toBeLessThan((compared * 4) / 5);
  return { compared, differences };
}

describe('FQL against @segment/tsub (destination filters)', () => {
  it('agrees on 600 generated expressions × 16 events', () => {
    const rnd = random(24);
    const texts = Array.from({ length: 600 }, () => combine(rnd, tsubCondition, 3));
    const irs = new Map(texts.map((t) => [t, toTsubIr(parseFql(t))]));
    const run = differential(texts, 'tsub', (text, event) =>
      tsubUndefinedShows(parseFql(text), event) ? undefined : tsub(irs.get(text)!, event),
    );
    expect(run.differences).toEqual([]);
    expect(run.compared).toBeGreaterThan(7000);
  });

  it.each([
    // Segment's own examples (FQL reference), through both.
    ['match(userId, "ab[cC]d")', 12, true],
    ['match(userId, "ab[A-Z]d")', 13, false],
    ['match(userId, "ab\\*d")', 10, true],
    ['match(userId, "ab\\*d")', 13, false],
    ['match(userId, "a??d")', 13, true],
    ['match(context.library.version, "1.*")', 0, true],
    ['match(properties.path, "/a*")', 6, true], // `*` crosses `/` (segmentio/glob)
    ['!contains(context.library.name, "js")', 0, false],
    ['type = "identify" or type = "track"', 0, true],
    ['properties.nested = properties.nested', 0, true],
    ['properties.tags = ["a", "b"]', 0, true],
    ['properties.num = 12', 0, false], // "12" is a string: types must agree
    ['length(properties.tags) = 2', 0, true],
    ['length(properties.currency) = null', 3, false], // explicit null: 0 in both
    ['length(properties.currency) = 0', 3, true],
  ])('%s (event %d) → %s', (text, e, expected) => {
    expect(ours(text, EVENTS[e])).toBe(expected);
    expect(tsub(toTsubIr(parseFql(text)), EVENTS[e])).toBe(expected);
  });

  // Where tsub departs from Segment's FQL reference; ours follows the reference.
  it.each([
    // A missing field is null in the reference; undefined in tsub.
    ['properties.missing = null', 0, true, false],
    ['properties.missing != null', 0, false, true],
    ['length(properties.missing) = 0', 0, true, false],
    // length counts bytes in the reference ("ア is 3 bytes"); tsub counts UTF-16 units.
    ['length("ア") = 3', 0, true, false],
    // `in` with a field holding the list (reference: 'dark-mode' in properties.features is true):
    // tsub reads each item of the list as a path.
    ['"dark-mode" in properties.features', 10, true, false],
    // typeof answers "bool", "list", "null" in the reference; tsub answers JavaScript's typeof.
    ['typeof(properties.flag) = "bool"', 0, true, false],
    ['typeof(properties.tags) = "list"', 0, true, false],
    ['typeof(properties.missing) = "null"', 0, true, false],
  ])('tsub departs from the reference: %s (event %d): ours %s, tsub %s', (text, e, expected, theirs) => {
    expect(ours(text, EVENTS[e])).toBe(expected);
    expect(tsub(toTsubIr(parseFql(text)), EVENTS[e])).toBe(theirs);
  });

  it('fails closed where tsub throws: `in` over a field that is not a list', () => {
    expect(ours('"a" in properties.currency', EVENTS[0])).toBe('error');
    expect(tsub(toTsubIr(parseFql('"a" in properties.currency')), EVENTS[0])).toBe('error');
  });
});

describe('filter actions against tsub transformers', () => {
  const FIELD_SETS: Record<string, string[]>[] = [
    { '': ['userId', 'context'] },
    { properties: ['total', 'tags'] },
    { properties: ['nested'], context: ['ip'] },
    { 'properties.nested': ['ok'] },
    { 'properties.products': ['price'] },
    { 'context.library': ['name'], '': ['type'] },
    { properties: ['missing'], traits: ['email'] },
  ];
  const withProducts = EVENTS.map((e, i) =>
    i % 3 === 0 ? { ...e, properties: { ...(e.properties as object), products: [{ price: 1, sku: 'a' }, 'x', { price: 2 }] } } : e,
  );

  it.each(['drop_properties', 'allow_properties'] as const)('%s: the same message for every field set and event', (type) => {
    for (const fields of FIELD_SETS) {
      for (const event of withProducts) {
        const rules: FilterRule[] = [{ name: 'r', enabled: true, if: 'all', actions: [{ type, fields }] }];
        const outcome = applyFilterRules(rules, event as Record<string, unknown>);
        const theirs = tsubTransform(structuredClone(event), [
          { type, config: type === 'drop_properties' ? { drop: fields } : { allow: fields } },
        ] as never);
        expect(outcome).toEqual({ kind: 'keep', message: theirs });
      }
    }
  });

  it('drop, and sample at 0 % and 100 %, as tsub', () => {
    const rule = (actions: FilterRule['actions']): FilterRule[] => [{ name: 'r', enabled: true, if: 'all', actions }];
    for (const event of EVENTS) {
      const message = event as Record<string, unknown>;
      expect(applyFilterRules(rule([{ type: 'drop' }]), message).kind).toBe('drop');
      expect(tsubTransform(structuredClone(event), [{ type: 'drop' }] as never)).toBeNull();
      expect(applyFilterRules(rule([{ type: 'sample', percent: 0, path: 'userId' }]), message).kind).toBe('drop');
      expect(
        tsubTransform(structuredClone(event), [{ type: 'sample_event', config: { sample: { percent: 0, path: 'userId' } } }] as never),
      ).toBeNull();
      expect(applyFilterRules(rule([{ type: 'sample', percent: 100, path: 'userId' }]), message).kind).toBe('keep');
      expect(
        tsubTransform(structuredClone(event), [{ type: 'sample_event', config: { sample: { percent: 1, path: 'userId' } } }] as never),
      ).toEqual(event);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Subscriptions: the FQL subset actions-core parses (segment-compat.md §4.2).

const SUB_FIELDS = [
  'type',
  'event',
  'name',
  'userId',
  'properties.total',
  'properties.count',
  'properties.currency',
  'properties.flag',
  'properties.nested.ok',
  'properties.num',
  'properties.missing',
  'traits.email',
  'traits.plan',
  'traits.age',
  'traits.vip',
  'context.library.name',
  'context.ip',
];
const NULLABLE = SUB_FIELDS.filter((f) => !['type', 'event'].includes(f));

function subscriptionCondition(rnd: () => number, functions = true): string {
  const field = pick(rnd, SUB_FIELDS);
  const argument = pick(
    rnd,
    SUB_FIELDS.filter((f) => f !== 'type'),
  ); // the library has no contains(type, ...)
  const word = pick(rnd, ['Order', 'Completed', 'user', '42', 'js', 'analytics', 'pro', 'USD', 'track', 'example.com', '']);
  switch (Math.floor(rnd() * (functions ? 8 : 5))) {
    case 0:
    case 1:
      return `${field} ${pick(rnd, ['=', '!='])} ${quote(pick(rnd, STRINGS))}`;
    case 2:
      return `${pick(
        rnd,
        NULLABLE.filter((f) => f !== 'name' && f !== 'userId'),
      )} ${pick(rnd, ['=', '<', '<=', '>', '>='])} ${pick(rnd, ['0', '3', '12', '20', '25.5', '31', '100'])}`;
    case 3:
      return `${pick(rnd, NULLABLE)} ${pick(rnd, ['=', '!='])} null`;
    case 4:
      return `${pick(
        rnd,
        NULLABLE.filter((f) => f !== 'name'),
      )} = ${pick(rnd, ['true', 'false'])}`;
    case 5:
      return `contains(${argument}, ${quote(word)})`;
    default:
      return `match(${argument}, ${quote(rnd() < 0.5 ? `${word}*` : `*${word}`)})`;
  }
}

/**
 * and-only or or-only levels (the library reads a mixed level with its last operator), with
 * groups in parentheses one level deep and without function calls (it ends a group at the
 * first `)`).
 */
function subscriptionExpression(rnd: () => number, grouped = false): string {
  const n = (grouped ? 2 : 1) + Math.floor(rnd() * 3);
  const op = rnd() < 0.5 ? 'and' : 'or';
  const parts = Array.from({ length: n }, () =>
    !grouped && rnd() < 0.3 ? `(${subscriptionExpression(rnd, true)})` : subscriptionCondition(rnd, !grouped),
  );
  return parts.join(` ${op} `);
}

function subscription(text: string, event: unknown): boolean | 'error' {
  try {
    const ast = subscriptionParse(text);
    return 'error' in ast ? 'error' : subscriptionValidate(ast, event);
  } catch {
    return 'error';
  }
}

describe('FQL against @segment/destination-subscriptions (action subscriptions)', () => {
  it('agrees on 500 generated subscriptions × 16 events', () => {
    const rnd = random(2024);
    const texts = Array.from({ length: 500 }, () => subscriptionExpression(rnd));
    const run = differential(texts, 'destination-subscriptions', subscription);
    expect(run.differences).toEqual([]);
    expect(run.compared).toBe(500 * EVENTS.length);
  });

  it.each([
    ['type = "track" and event = "Order Completed"', 0, true],
    ['properties.total > 20 and properties.currency = "USD"', 0, true],
    ['!contains(event, "Refunded")', 0, true],
    ['!match(userId, "test_*")', 1, false],
    ['properties.missing = null', 0, true],
    ['traits.email != null', 4, true],
    ['(type = "identify" or type = "group") and userId != null', 8, true],
  ])('%s (event %d) → %s', (text, e, expected) => {
    expect(ours(text, EVENTS[e])).toBe(expected);
    expect(subscription(text, EVENTS[e])).toBe(expected);
  });

  // Where destination-subscriptions departs from Segment's FQL reference; ours follows it.
  it.each([
    // `!= <number>` becomes "a number, not equal": false for a missing or non-number value (the
    // reference: != is true when the types differ).
    ['properties.missing != 3', 0, true, false],
    ['properties.num != 12', 0, true, false],
    // `!contains` / `!match` become "a string that does not contain": false on a missing value
    // (the reference: contains(null, ...) is false, so its negation is true).
    ['!contains(properties.missing, "x")', 0, true, false],
    ['!match(properties.missing, "x*")', 0, true, false],
    // A mixed and/or level is read with its last operator (no precedence): `a and b or c` as `a or b or c`.
    ['type = "identify" and event = "x" or userId = "user_42"', 0, true, true],
    ['type = "track" or event = "x" and userId = "nobody"', 0, true, false],
    // `type`/`event` compared with null compare with the string "null".
    ['event = null', 9, true, false],
    ['event != null', 9, false, true],
    // match() is only a prefix (`x*`) or a suffix (`*x`): `?`, classes, inner `*` are literal text or lost.
    ['match(userId, "user_??")', 0, true, false],
    ['match(event, "Order*Completed")', 0, true, false],
    // A group ends at the first `)`: a function call's own, or a nested group's (then no parse).
    ['(contains(event, "Order") and type = "identify") or userId = "nobody"', 0, false, true],
    ['type = "track" and (event = "x" or (userId = "user_42" and name = null))', 0, true, 'error'],
    // Single-quoted patterns are read as suffixes.
    ["match(userId, 'user*')", 0, true, false],
  ])('destination-subscriptions departs from the reference: %s (event %d): ours %s, theirs %s', (text, e, expected, theirs) => {
    expect(ours(text, EVENTS[e])).toBe(expected);
    expect(subscription(text, EVENTS[e])).toBe(theirs);
  });
});

// The literal values the generators use must parse as the FQL literals they name.
it('generator literals parse as literals', () => {
  for (const text of LITERALS) {
    const node = parseFql(`x = ${text}`);
    expect(node.kind === 'compare' && node.right.kind === 'literal').toBe(true);
    if (node.kind === 'compare' && node.right.kind === 'literal')
      expect(node.right.value as FqlValue).toEqual(JSON.parse(text === '1e3' ? '1000' : text));
  }
});
