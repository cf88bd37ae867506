import { cloneJson } from './clone';

describe('cloneJson', () => {
  it('copies a parsed message deeply: editing the copy leaves the original', () => {
    const original = JSON.parse('{"a":{"b":[1,{"c":"d"}],"n":null,"t":true,"x":1.5},"s":"v"}');
    const copy = cloneJson(original);
    expect(copy).toEqual(original);
    copy.a.b[1].c = 'changed';
    delete copy.a.n;
    copy.a.b.push(3);
    expect(original).toEqual({ a: { b: [1, { c: 'd' }], n: null, t: true, x: 1.5 }, s: 'v' });
  });

  it('keeps a __proto__ key a plain property', () => {
    const copy = cloneJson(JSON.parse('{"__proto__":{"polluted":true},"k":1}'));
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect((copy as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.keys(copy)).toEqual(['__proto__', 'k']);
    expect(JSON.stringify(copy)).toBe('{"__proto__":{"polluted":true},"k":1}');
  });
});
