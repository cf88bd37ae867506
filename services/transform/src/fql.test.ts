import { compileFql, FqlSyntaxError } from './fql';

const event = {
  type: 'track',
  event: 'Order Completed',
  userId: 'test_42',
  anonymousId: null,
  properties: {
    total: 25.5,
    count: 3,
    currency: 'USD',
    tags: ['a', 'b'],
    nested: { ok: true },
    'dash-key': 1,
    'dot.key': 'd',
    flag: 'true',
    num: '12',
  },
  context: { traits: { email: 'Jane.Doe@Example.com' }, library: { name: 'analytics.js' } },
  name: 'signUpCompleted now',
};

describe('FQL expressions against one event', () => {
  it.each([
    ['all', true],
    ['type = "track"', true],
    ['type = "identify"', false],
    ['type != "identify"', true],
    ['event = "Order Completed"', true],
    ['properties.total > 20', true],
    ['properties.total >= 25.5', true],
    ['properties.total < 25.5', false],
    ['properties.total <= 25.5', true],
    ['properties.count = 3', true],
    ['properties.count != 3', false],
    ['properties.currency > 1', false],
    ['properties.missing > 1', false],
    ['properties.missing < 1', false],
    ['properties.missing = null', true],
    ['anonymousId = null', true],
    ['userId != null', true],
    ['properties.currency in ["USD", "EUR"]', true],
    ['properties.currency in ["GBP"]', false],
    ['properties.count in [1, 2, 3]', true],
    ['properties.missing in ["x"]', false],
    ['type = "track" and properties.total > 20', true],
    ['type = "track" and properties.total > 30', false],
    ['type = "identify" or properties.total > 20', true],
    ['type = "identify" or properties.total > 30', false],
    ['!(type = "identify")', true],
    ['!type = "track"', false],
    ['!contains(event, "Order")', false],
    ['type = "track" and (event = "x" or event = "Order Completed")', true],
    ['type = "identify" and event = "x" or userId = "test_42"', true],
    ['contains(event, "Completed")', true],
    ['contains(event, "completed")', false],
    ['contains(properties.missing, "x")', false],
    ['contains(properties.tags, "b")', false], // strings only (the reference, tsub)
    ["event = 'Order Completed'", true], // single quotes, as the reference's examples
    ['"b" in properties.tags', true],
    ['"z" in properties.tags', false],
    ['"b" in properties.missing', false],
    ['match(userId, "test_*")', true],
    ['match(userId, "test_?")', false],
    ['match(userId, "test_??")', true],
    ['match(userId, "prod_*")', false],
    ['match(properties.missing, "*")', false],
    ['match(context.library.name, "analytics.js")', true],
    ['match(context.library.name, "analyticsxjs")', false],
    ['length(userId) = 7', true],
    ['length("é") = 2', true],
    ['length(properties.tags) = 2', true],
    ['length(properties.missing) = null', false],
    ['length(properties.missing) = 0', true], // length(null) is 0 (the reference)
    ['length(properties.nested) = null', false], // no length: NaN, equal to nothing
    ['length(properties.missing) > 0', false],
    ['lowercase(context.traits.email) = "jane.doe@example.com"', true],
    ['uppercase(properties.currency) = "USD"', true],
    ['lowercase(properties.missing) = null', true],
    ['snakecase(name) = "sign_up_completed_now"', true],
    ['kebabcase(name) = "sign-up-completed-now"', true],
    ['titlecase(event) = "Order Completed"', true],
    ['typeof(properties.total) = "number"', true],
    ['typeof(userId) = "string"', true],
    ['typeof(properties.tags) = "list"', true],
    ['typeof(properties.nested) = "object"', true],
    ['typeof(properties.missing) = "null"', true],
    ['typeof(properties.nested.ok) = "bool"', true],
    ['bool(properties.flag) = true', true],
    ['bool(properties.nested.ok)', true],
    ['bool(properties.missing) = null', true],
    ['number(properties.num) > 10', true],
    ['number(properties.currency) = null', true],
    ['string(properties.count) = "3"', true],
    ['string(properties.missing) = null', true],
    ['properties.dash-key = 1', true],
    ['properties.dot\\.key = "d"', true],
    ['properties.nested.ok = true', true],
    ['properties.nested.ok = false', false],
    ['properties.total = -1', false],
    ['userId', false],
  ])('%s → %s', (expression, expected) => {
    expect(compileFql(expression).matches(event)).toBe(expected);
  });
});

describe('FQL syntax errors name the problem', () => {
  it.each([
    ['', /empty expression/],
    ['type = ', /unexpected end/],
    ['type = "track', /unterminated string/],
    ['(type = "track"', /expected '\)'/],
    ['nosuch(type)', /unknown function 'nosuch'/],
    ['contains(type)', /contains\(\) takes 2 argument/],
    ['type = "a" "b"', /unexpected 'b'/],
    ['type # 1', /unexpected '#'/],
    ['type in "x"', /in needs a \[list\] or a field/],
  ])('%j', (expression, message) => {
    expect(() => compileFql(expression)).toThrow(FqlSyntaxError);
    expect(() => compileFql(expression)).toThrow(message);
  });
});
