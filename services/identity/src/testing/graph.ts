import { ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { TableNames } from '../tables';

export interface GraphDump {
  /** id → profileId as mapped. */
  mappings: Map<string, string>;
  profiles: Map<
    string,
    {
      ids: string[];
      mergedInto?: string;
      mergedFrom: string[];
      merges: number;
      events: number;
      traits: Record<string, { v: unknown; t: number }>;
    }
  >;
}

/** Every mapping and profile of a space, read whole (tests only: a Scan). */
export async function dumpGraph(client: DynamoDBClient, tables: TableNames, spaceId: string): Promise<GraphDump> {
  const dump: GraphDump = { mappings: new Map(), profiles: new Map() };
  const prefix = `${spaceId}|`;
  for (const [table, onItem] of [
    [
      tables.ids,
      (pk: string, item: Record<string, { S?: string; N?: string; M?: Record<string, unknown> }>) =>
        dump.mappings.set(pk, item.profileId.S!),
    ],
    [
      tables.profiles,
      (pk: string, item: Record<string, { S?: string; N?: string; M?: Record<string, unknown> }>) =>
        dump.profiles.set(pk, {
          ids: Object.keys(item.ids.M ?? {}).sort(),
          mergedInto: item.mergedInto?.S,
          mergedFrom: ((item.mergedFrom as { L?: Array<{ S?: string }> }).L ?? []).map((x) => x.S!),
          merges: Number(item.merges.N),
          events: Number(item.events.N),
          traits: JSON.parse(item.traits.S!),
        }),
    ],
  ] as const) {
    let start: Record<string, never> | undefined;
    do {
      const page = await client.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
      for (const item of page.Items ?? []) {
        const pk = item.pk.S!;
        if (pk.startsWith(prefix)) onItem(pk.slice(prefix.length), item as never);
      }
      start = page.LastEvaluatedKey as never;
    } while (start);
  }
  return dump;
}

/** The live profile an id leads to, following mergedInto. */
export function liveProfileOf(dump: GraphDump, id: string): string | undefined {
  let p = dump.mappings.get(id);
  for (let hops = 0; p !== undefined && hops < 10_000; hops++) {
    const next = dump.profiles.get(p)?.mergedInto;
    if (next === undefined) return p;
    p = next;
  }
  return undefined;
}

/**
 * The grouping of ids by live profile, as sorted lists of ids (profile ids left out, so two
 * runs compare), and the graph's invariants: every mapping reaches a live profile, every live
 * profile lists its mappings, no mergedInto dangles or loops.
 */
export function groupsOf(dump: GraphDump): { groups: string[][]; problems: string[] } {
  const problems: string[] = [];
  const byProfile = new Map<string, string[]>();
  for (const id of dump.mappings.keys()) {
    const live = liveProfileOf(dump, id);
    if (live === undefined || !dump.profiles.has(live)) {
      problems.push(`${id}: no live profile`);
      continue;
    }
    if (!dump.profiles.get(live)!.ids.includes(id)) problems.push(`${id}: not listed on its live profile ${live}`);
    byProfile.set(live, [...(byProfile.get(live) ?? []), id]);
  }
  for (const [p, profile] of dump.profiles) {
    if (profile.mergedInto !== undefined && !dump.profiles.has(profile.mergedInto))
      problems.push(`${p}: mergedInto ${profile.mergedInto} does not exist`);
    if (profile.mergedInto === undefined)
      for (const id of profile.ids)
        if (liveProfileOf(dump, id) !== p) problems.push(`${p}: lists ${id}, which leads to ${liveProfileOf(dump, id)}`);
  }
  const groups = [...byProfile.values()].map((ids) => ids.sort()).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return { groups, problems };
}
