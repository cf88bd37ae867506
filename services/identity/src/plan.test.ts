import type { SegmentMessage } from '@cdp/events';
import { eventIds } from './ids';
import { planResolution, type ProfileView } from './plan';
import { testRules } from './testing/rules';

const rules = testRules();
const NOW = 1_700_000_000_000;

function profile(profileId: string, ids: string[], extra: Partial<ProfileView> = {}): ProfileView {
  return { profileId, createdAt: 1, ids: Object.fromEntries(ids.map((id) => [id, NOW - 1000])), merges: 0, ...extra };
}

function graph(...profiles: ProfileView[]) {
  const mapped = new Map<string, string>();
  for (const p of profiles) for (const id of Object.keys(p.ids)) mapped.set(id, p.profileId);
  return { mapped, profiles: new Map(profiles.map((p) => [p.profileId, p])) };
}

const msg = (m: Partial<SegmentMessage>): SegmentMessage => ({ type: 'track', messageId: 'm1', event: 'e', ...m }) as SegmentMessage;

describe('eventIds', () => {
  it('reads user_id, email, anonymous_id, device ids and users externalIds, in priority order', () => {
    const ids = eventIds(
      msg({
        type: 'identify',
        anonymousId: 'a1',
        userId: 'u1',
        traits: { email: 'x@y.z' },
        context: {
          device: { type: 'ios', id: 'd1', token: 'tok', adTrackingEnabled: false, advertisingId: 'ad' },
          externalIds: [
            { id: 'c1', type: 'crm_id', collection: 'users', encoding: 'none' },
            { id: 'g1', type: 'group_key', collection: 'accounts' },
          ],
        },
      }),
      rules,
    );
    expect(ids).toEqual(['user_id:u1', 'email:x@y.z', 'anonymous_id:a1', 'crm_id:c1', 'ios.id:d1', 'ios.push_token:tok']);
  });

  it('never promotes blocked values', () => {
    for (const value of ['0', '000-000', '-1', 'null', 'undefined', 'anonymous', '']) {
      expect(eventIds(msg({ userId: value, anonymousId: 'a' }), rules)).toEqual(['anonymous_id:a']);
    }
    const custom = testRules({ blockedValues: ['void'], blockedPatterns: ['^test-'] });
    expect(eventIds(msg({ userId: 'void', anonymousId: 'test-1' }), custom)).toEqual([]);
    expect(eventIds(msg({ userId: 'null' }), custom)).toEqual(['user_id:null']);
  });

  it("joins an alias's previousId as an anonymous id", () => {
    expect(eventIds(msg({ type: 'alias', userId: 'u', previousId: 'a' }), rules)).toEqual(['user_id:u', 'anonymous_id:a']);
  });
});

describe('planResolution (flat matching)', () => {
  it('none → create, one → attach new ids, several → merge into the oldest', () => {
    const empty = graph();
    expect(planResolution(['user_id:u', 'anonymous_id:a'], empty.mapped, empty.profiles, rules, NOW)).toEqual({
      kind: 'create',
      ids: ['user_id:u', 'anonymous_id:a'],
      refusals: [],
    });

    const one = graph(profile('P', ['anonymous_id:a']));
    expect(planResolution(['user_id:u', 'anonymous_id:a'], one.mapped, one.profiles, rules, NOW)).toEqual({
      kind: 'attach',
      profileId: 'P',
      newIds: ['user_id:u'],
      refusals: [],
    });

    const two = graph(profile('P', ['anonymous_id:a'], { createdAt: 5 }), profile('Q', ['user_id:u'], { createdAt: 2 }));
    expect(planResolution(['user_id:u', 'anonymous_id:a', 'email:e'], two.mapped, two.profiles, rules, NOW)).toEqual({
      kind: 'merge',
      winner: 'Q',
      losers: ['P'],
      newIds: ['email:e'],
      refusals: [],
    });
  });

  it('a shared anonymous id never merges two user ids: it is dropped and a new profile made', () => {
    const g = graph(profile('A', ['user_id:alice', 'anonymous_id:shared']));
    expect(planResolution(['user_id:bob', 'anonymous_id:shared'], g.mapped, g.profiles, rules, NOW)).toEqual({
      kind: 'create',
      ids: ['user_id:bob'],
      refusals: [{ reason: 'value_limit', id: 'anonymous_id:shared', type: 'user_id' }],
    });
  });

  it('a sixth email is dropped (the lowest-priority id of the event) and matching retried', () => {
    const emails = [1, 2, 3, 4, 5].map((i) => `email:e${i}`);
    const g = graph(profile('P', ['user_id:u', ...emails]));
    expect(planResolution(['user_id:u', 'email:e6'], g.mapped, g.profiles, rules, NOW)).toEqual({
      kind: 'attach',
      profileId: 'P',
      newIds: [],
      refusals: [{ reason: 'value_limit', id: 'email:e6', type: 'email' }],
    });
  });

  it('values added outside their window do not count toward the limit', () => {
    const weekly = testRules({
      identifiers: { user_id: { priority: 1, limit: 1 }, anonymous_id: { priority: 2, limit: 1, window: 'weekly' } },
    });
    const old = graph(
      profile('P', ['user_id:u', 'anonymous_id:a1'], { ids: { 'user_id:u': NOW - 1000, 'anonymous_id:a1': NOW - 8 * 86_400_000 } }),
    );
    expect(planResolution(['user_id:u', 'anonymous_id:a2'], old.mapped, old.profiles, weekly, NOW)).toMatchObject({
      kind: 'attach',
      newIds: ['anonymous_id:a2'],
    });
    const recent = graph(profile('P', ['user_id:u', 'anonymous_id:a1']));
    expect(planResolution(['user_id:u', 'anonymous_id:a2'], recent.mapped, recent.profiles, weekly, NOW)).toMatchObject({
      kind: 'attach',
      newIds: [],
    });
  });

  it('at the merge cap nothing merges and the event resolves to its highest-priority profile', () => {
    const capped = testRules({ maxMergesPerProfile: 2 });
    const g = graph(profile('P', ['user_id:u'], { merges: 2 }), profile('Q', ['anonymous_id:a']));
    expect(planResolution(['user_id:u', 'anonymous_id:a'], g.mapped, g.profiles, capped, NOW)).toEqual({
      kind: 'attach',
      profileId: 'P',
      newIds: [],
      refusals: [{ reason: 'merge_cap', id: 'anonymous_id:a' }],
    });
  });

  it('at the mapping cap new ids are left unmapped and the event still resolves', () => {
    const capped = testRules({ maxMappingsPerProfile: 2 });
    const g = graph(profile('P', ['user_id:u', 'anonymous_id:a']));
    expect(planResolution(['user_id:u', 'anonymous_id:b'], g.mapped, g.profiles, capped, NOW)).toEqual({
      kind: 'attach',
      profileId: 'P',
      newIds: [],
      refusals: [{ reason: 'mapping_cap', id: 'anonymous_id:b' }],
    });
  });

  it('an event without a usable id is unresolved', () => {
    const g = graph();
    expect(planResolution([], g.mapped, g.profiles, rules, NOW)).toEqual({ kind: 'unresolved', refusals: [] });
  });
});
